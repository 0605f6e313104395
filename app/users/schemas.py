"""Request and response models of the users API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Berlin"])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class UserCreated(BaseModel):
    user_id: uuid.UUID
    token: str = Field(description="Bearer token of the new user. Shown only once; only its hash is stored.")


class UserPublic(BaseModel):
    user_id: uuid.UUID
    timezone: str
    created_at: datetime


class UserExport(BaseModel):
    """Everything Rhythm holds about the user: one list of rows per table (secrets left out)."""

    user: UserPublic
    exported_at: datetime
    tables: dict[str, list[dict[str, Any]]]


class UserListed(UserPublic):
    """A user as ``rhythm users list`` shows it: no token, no hash, only how many tokens are active."""

    active_tokens: int

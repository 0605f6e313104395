"""Request and response models of the users API."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

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


# Names the system's zoneinfo folder has but IANA does not define as a place: "localtime" is the server's own
# zone (a user's slots would silently follow the server), "Factory" means "zone not set".
_NOT_IANA_ZONES = frozenset({"localtime", "Factory"})


@lru_cache(maxsize=1)
def _iana_zone_names() -> frozenset[str]:
    # available_timezones() walks the zoneinfo folders on every call; the set does not change at run time.
    return frozenset(available_timezones() - _NOT_IANA_ZONES)


def iana_timezone(value: str) -> str:
    """``value`` if it is an IANA time zone name ("Europe/Berlin", "UTC"), else ``ValueError``."""
    if value not in _iana_zone_names():
        raise ValueError(f"unknown IANA time zone {value!r} (expected a name such as 'Europe/Berlin')")
    return value


class UserUpdate(BaseModel):
    """``PATCH /v1/users/me``: the fields to change. Today only the time zone can change."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(max_length=64, examples=["America/New_York"])

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        return iana_timezone(value)


class UserCreated(BaseModel):
    user_id: uuid.UUID
    token: str = Field(description="Bearer token of the new user. Shown only once; only its hash is stored.")


class TokenCreated(BaseModel):
    user_id: uuid.UUID
    token: str = Field(description="The new bearer token. Shown only once; only its hash is stored.")
    prefix: str = Field(description="The token's first characters, to tell it apart without revealing it.")
    revoked_tokens: int = Field(description="How many previously active tokens of the user were revoked.")


class UserPublic(BaseModel):
    user_id: uuid.UUID
    timezone: str
    created_at: datetime


class UserExport(BaseModel):
    """Everything Rhythm holds about the user: one list of rows per table (secrets left out)."""

    user: UserPublic
    exported_at: datetime
    tables: dict[str, list[dict[str, Any]]]

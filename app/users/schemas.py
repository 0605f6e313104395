"""Request and response models of the users API."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# In the zoneinfo database but not places: the host's zone (whatever the server runs in), the "Factory"
# placeholder and the legacy rule file; the posix/ and right/ trees duplicate real names with other rules.
_PSEUDO_ZONES = frozenset({"localtime", "Factory", "posixrules"})
_PSEUDO_PREFIXES = ("posix/", "right/")


@lru_cache(maxsize=1)
def iana_zone_names() -> frozenset[str]:
    """The IANA zone names users may have (``zoneinfo.available_timezones()`` minus pseudo zones)."""
    return frozenset(
        name
        for name in available_timezones()
        if name not in _PSEUDO_ZONES and not name.startswith(_PSEUDO_PREFIXES)
    )


def _iana_zone(value: str) -> str:
    if value not in iana_zone_names():
        raise ValueError(f"unknown IANA time zone {value!r} (use a name such as Europe/Berlin or UTC)")
    return value


IanaTimeZone = Annotated[
    str,
    # The names are in the schema too: clients (and schema-driven fuzzers) see exactly what is accepted.
    Field(
        min_length=1,
        max_length=64,
        examples=["Europe/Berlin"],
        description="An IANA time zone name.",
        json_schema_extra={"enum": sorted(iana_zone_names())},
    ),
    AfterValidator(_iana_zone),
]
"""A user's time zone: an IANA name (``Europe/Berlin``, ``UTC``); paths and pseudo zones are refused."""


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: IanaTimeZone = "UTC"


class UserUpdate(BaseModel):
    """``PATCH /v1/users/me``: the fields to change. Today only the time zone can change."""

    model_config = ConfigDict(extra="forbid")

    timezone: IanaTimeZone


class UserCreatedPublic(BaseModel):
    user_id: uuid.UUID
    token: str = Field(description="Bearer token of the new user. Shown only once; only its hash is stored.")


class TokenPublic(BaseModel):
    user_id: uuid.UUID
    token: str = Field(description="The new bearer token. Shown only once; only its hash is stored.")
    prefix: str = Field(description="The token's first characters, to tell it apart without revealing it.")
    revoked_tokens: int = Field(description="How many previously active tokens of the user were revoked.")


class UserPublic(BaseModel):
    user_id: uuid.UUID
    timezone: str
    created_at: datetime


class UserExportPublic(BaseModel):
    """Everything Rhythm holds about the user: one list of rows per table (secrets left out)."""

    user: UserPublic
    exported_at: datetime
    tables: dict[str, list[dict[str, Any]]]


class UserListed(UserPublic):
    """A user as ``rhythm users list`` shows it: no token, no hash, only how many tokens are active."""

    active_tokens: int

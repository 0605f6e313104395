"""Request and response models of the connections API. Tokens never appear in a response."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ConnectionPublic(BaseModel):
    provider: str = Field(
        description="Provider name, as in the URLs (whoop, oura, google-health, google, terra…)."
    )
    external_user_id: str = Field(
        description="The account's id at the provider, as the provider reported it."
    )
    status: str = Field(description="active, needs_reconsent (link the account again) or revoked.")
    status_reason: str | None = Field(default=None, description="Why the connection is not active.")
    scopes: list[str] = Field(description="Scopes the provider granted.")
    created_at: datetime
    updated_at: datetime


class AuthorizationUrlPublic(BaseModel):
    authorization_url: str = Field(
        description="Open this in a browser (the app's in-app browser): the provider's consent page."
    )


class ConnectionTokensCreate(BaseModel):
    """Tokens the app obtained itself (a native SDK). The account id is read from the provider, never sent."""

    model_config = ConfigDict(extra="forbid")

    access_token: str = Field(min_length=1, max_length=4096)
    refresh_token: str | None = Field(default=None, min_length=1, max_length=4096)
    # strict: a JSON integer only ("3600", true and 3600.0 are refused, not coerced).
    expires_in: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=366 * 24 * 3600,
        description="Seconds the access token stays valid.",
    )
    scope: str | None = Field(default=None, max_length=1024, description="Space-separated granted scopes.")


class TerraSessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: list[str] | None = Field(
        default=None,
        max_length=32,
        description="Terra provider names to offer (e.g. GARMIN, FITBIT); all enabled ones when absent.",
    )
    language: str | None = Field(default=None, min_length=2, max_length=16, pattern=r"^[A-Za-z-]+$")


class TerraSessionPublic(BaseModel):
    url: str = Field(
        description="Terra's widget URL; open it in a browser. Terra's `auth` webhook links the account."
    )
    session_id: str | None = None
    expires_in: int | None = Field(default=None, description="Seconds the widget session stays valid.")

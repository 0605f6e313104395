"""The OAuth providers we link accounts with, and where each one's endpoints come from.

One :class:`OAuthProvider` per provider holds what does not change between deployments (scopes, PKCE, how the
provider authenticates our client, where its profile says who the user is, which job runs once an account is
linked); :meth:`OAuthProvider.endpoints` reads what does (client credentials and URLs) from settings, so tests
point a provider at a local server and an unconfigured provider simply does not exist (``None`` → 404).

The provider's user id is read from its own profile endpoint with the user's token, never from the client: a
client-supplied id would let one user claim another's device and receive their health data (issue 12).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from app.core.config import Settings
from app.core.tasks import BACKFILL_CONNECTION, CALENDAR_SETUP_CONNECTION

CALLBACK_PATH = "/v1/connect/{provider}/callback"


class RevokeStyle(enum.StrEnum):
    """How a provider lets us give a grant back."""

    # RFC 7009: POST the token as a form, client authenticated (Google, Google Health).
    RFC7009 = "rfc7009"
    # Oura: the access token as a query parameter of its revoke URL.
    QUERY_ACCESS_TOKEN = "query_access_token"
    # WHOOP: DELETE on the revoke URL with the user's bearer token (``DELETE /v2/user/access``).
    BEARER_DELETE = "bearer_delete"


class ProfileError(Exception):
    """The provider's profile response does not name a user (→ the link fails, nothing is stored)."""


@dataclass(frozen=True, slots=True)
class OAuthEndpoints:
    """A configured provider's credentials and URLs, as the deployment's settings give them."""

    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    revoke_url: str
    api_base_url: str
    redirect_uri: str

    def api_url(self, path: str) -> str:
        return self.api_base_url.rstrip("/") + path


@dataclass(frozen=True, slots=True)
class OAuthProvider:
    # URL segment (``/v1/connect/{name}/…``) and ``device_connections.provider``.
    name: str
    # Settings prefix: ``{prefix}_client_id`` etc.
    settings_prefix: str
    scopes: tuple[str, ...]
    # Whether the provider verifies an RFC 7636 ``code_challenge`` (S256); where it does we always send one.
    pkce: bool
    # GET ``{api_base_url}{profile_path}`` with the access token → a JSON object naming the user.
    profile_path: str
    user_id_field: str
    # Celery task name, enqueued with ``args=[str(connection.id)]`` after the commit linking the account.
    on_link_task: str
    # How our client authenticates at the token endpoint (Authlib's names).
    token_auth_method: str = "client_secret_basic"
    revoke_style: RevokeStyle = RevokeStyle.RFC7009
    # Extra authorize parameters (Google: offline access, so that a refresh token is issued).
    authorize_params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)

    def endpoints(self, settings: Settings) -> OAuthEndpoints | None:
        """The provider as configured in ``settings``, or ``None`` when it has no client id."""
        prefix = self.settings_prefix
        client_id: str = getattr(settings, f"{prefix}_client_id")
        if not client_id:
            return None
        return OAuthEndpoints(
            client_id=client_id,
            client_secret=getattr(settings, f"{prefix}_client_secret").get_secret_value(),
            authorize_url=getattr(settings, f"{prefix}_authorize_url"),
            token_url=getattr(settings, f"{prefix}_token_url"),
            revoke_url=getattr(settings, f"{prefix}_revoke_url"),
            api_base_url=getattr(settings, f"{prefix}_api_base_url"),
            redirect_uri=settings.public_base_url.rstrip("/") + CALLBACK_PATH.format(provider=self.name),
        )

    def user_id_from_profile(self, profile: Any) -> str:
        """The provider's id of the user, from its profile response (ids are strings or integers)."""
        value = profile.get(self.user_id_field) if isinstance(profile, dict) else None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ProfileError(f"{self.name} profile has no {self.user_id_field!r}")
        text = str(value).strip()
        if not text or len(text) > 255:  # device_connections.external_user_id
            raise ProfileError(f"{self.name} profile has an unusable {self.user_id_field!r}")
        return text


_GOOGLE_OFFLINE = MappingProxyType(
    # offline → a refresh token; consent → Google issues it again on a re-link (otherwise only on first
    # consent); granted scopes kept when a user links Calendar after Health.
    {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"}
)

WHOOP = OAuthProvider(
    name="whoop",
    settings_prefix="whoop",
    # ``offline`` is WHOOP's scope for a refresh token.
    scopes=(
        "offline",
        "read:profile",
        "read:recovery",
        "read:cycles",
        "read:sleep",
        "read:workout",
        "read:body_measurement",
    ),
    pkce=False,
    profile_path="/v2/user/profile/basic",
    user_id_field="user_id",
    on_link_task=BACKFILL_CONNECTION,
    token_auth_method="client_secret_post",
    revoke_style=RevokeStyle.BEARER_DELETE,
)

OURA = OAuthProvider(
    name="oura",
    settings_prefix="oura",
    scopes=("email", "personal", "daily", "heartrate", "workout", "session", "spo2Daily"),
    pkce=False,
    profile_path="/v2/usercollection/personal_info",
    user_id_field="id",
    on_link_task=BACKFILL_CONNECTION,
    token_auth_method="client_secret_post",
    revoke_style=RevokeStyle.QUERY_ACCESS_TOKEN,
)

GOOGLE_HEALTH = OAuthProvider(
    name="google-health",
    settings_prefix="google_health",
    scopes=(
        "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly",
        "https://www.googleapis.com/auth/googlehealth.health_metrics_and_measurements.readonly",
        "https://www.googleapis.com/auth/googlehealth.sleep.readonly",
        "https://www.googleapis.com/auth/googlehealth.profile.readonly",
    ),
    pkce=True,
    # users.getIdentity: ``healthUserId`` is the id Google Health notifications carry.
    profile_path="/v4/users/me/identity",
    user_id_field="healthUserId",
    on_link_task=BACKFILL_CONNECTION,
    authorize_params=_GOOGLE_OFFLINE,
)

GOOGLE = OAuthProvider(
    name="google",
    settings_prefix="google",
    scopes=(
        "openid",
        "https://www.googleapis.com/auth/calendar.readonly",
        "https://www.googleapis.com/auth/tasks.readonly",
    ),
    pkce=True,
    # OpenID Connect userinfo: ``sub`` is the stable Google account id.
    profile_path="/oauth2/v3/userinfo",
    user_id_field="sub",
    on_link_task=CALENDAR_SETUP_CONNECTION,
    authorize_params=_GOOGLE_OFFLINE,
)

PROVIDERS: Mapping[str, OAuthProvider] = MappingProxyType(
    {provider.name: provider for provider in (WHOOP, OURA, GOOGLE_HEALTH, GOOGLE)}
)


def oauth_provider(name: str) -> OAuthProvider | None:
    """The OAuth provider called ``name`` (as in URLs and ``device_connections.provider``), if we know it."""
    return PROVIDERS.get(name)

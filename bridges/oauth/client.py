"""OAuth 2 calls to the providers, built on Authlib's httpx clients.

Asynchronous for the API (code exchange, profile read), synchronous for workers (refresh, revocation). Every
call has a timeout (``oauth_http_timeout``) and errors are sorted into what the caller can act on:

* :class:`OAuthGrantError` — the provider refused the grant (``invalid_grant``, a bad code, 401): the user
  must authorise us again; retrying cannot help.
* :class:`ProviderUnavailable` — network error, timeout, 5xx, 429, a non-JSON answer: try again later.

Tokens cross this module as :class:`bridges.connections.TokenSet` only; storing them is
``bridges.connections``' job.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client, OAuthError

from app.core.config import Settings
from bridges.connections import TokenSet
from bridges.oauth.providers import OAuthEndpoints, OAuthProvider, RevokeStyle

# Authlib builds its clients on ``httpx2`` when that is installed (huggingface_hub pulls it in), else on
# ``httpx``: the errors its clients raise come from whichever it picked, so we catch both.
_AUTHLIB_HTTP: Any = sys.modules[
    next(base for base in OAuth2Client.__mro__ if base.__name__ == "Client").__module__.split(".")[0]
]
_HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, _AUTHLIB_HTTP.HTTPError)
_STATUS_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPStatusError, _AUTHLIB_HTTP.HTTPStatusError)

# RFC 7636: 43–128 characters; Authlib's generator draws from the unreserved set.
_PKCE_VERIFIER_LENGTH = 64


class OAuthGrantError(Exception):
    """The provider refused our grant or token (the user must consent again). ``error`` is its OAuth code."""

    def __init__(self, error: str, description: str | None = None, status: int | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered with a server error: retry later."""


def _timeout(settings: Settings) -> float:
    # A plain number: both httpx and httpx2 take it (their Timeout classes are not interchangeable).
    return settings.oauth_http_timeout.total_seconds()


def new_state() -> str:
    """An unguessable ``state`` value (the row holding it is what makes it single-use and expiring)."""
    return secrets.token_urlsafe(32)


def new_code_verifier() -> str:
    return str(generate_token(_PKCE_VERIFIER_LENGTH))


def authorization_url(
    provider: OAuthProvider, endpoints: OAuthEndpoints, state: str, code_verifier: str | None
) -> str:
    """The provider's authorize URL for ``state`` (with an S256 challenge when ``code_verifier`` is given)."""
    client = OAuth2Client(
        client_id=endpoints.client_id,
        scope=provider.scope,
        redirect_uri=endpoints.redirect_uri,
        code_challenge_method="S256" if code_verifier else None,
    )
    with client:
        url, _ = client.create_authorization_url(
            endpoints.authorize_url, state=state, code_verifier=code_verifier, **provider.authorize_params
        )
    return str(url)


def token_set(token: Mapping[str, Any], now: datetime | None = None) -> TokenSet:
    """A :class:`TokenSet` from a token response (Authlib adds ``expires_at`` from ``expires_in``)."""
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthGrantError("invalid_response", "the token response has no access_token")
    refresh = token.get("refresh_token")
    expires_at: datetime | None = None
    raw_expires_at = token.get("expires_at")
    raw_expires_in = token.get("expires_in")
    if isinstance(raw_expires_at, int | float) and not isinstance(raw_expires_at, bool):
        expires_at = datetime.fromtimestamp(raw_expires_at, UTC)
    elif isinstance(raw_expires_in, int | float) and not isinstance(raw_expires_in, bool):
        expires_at = (now or datetime.now(UTC)) + timedelta(seconds=raw_expires_in)
    scope = token.get("scope")
    return TokenSet(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=expires_at,
        scopes=scope if isinstance(scope, str) and scope else None,
    )


def _client_kwargs(provider: OAuthProvider, endpoints: OAuthEndpoints, settings: Settings) -> dict[str, Any]:
    return {
        "client_id": endpoints.client_id,
        "client_secret": endpoints.client_secret,
        "token_endpoint_auth_method": provider.token_auth_method,
        "revocation_endpoint_auth_method": provider.token_auth_method,
        "redirect_uri": endpoints.redirect_uri,
        "timeout": _timeout(settings),
        # Tokens and profiles never come from a redirect target we did not configure (API10).
        "follow_redirects": False,
    }


def _grant_error(exc: OAuthError, status: int | None) -> OAuthGrantError:
    return OAuthGrantError(str(exc.error or "oauth_error"), exc.description, status)


class _StatusRecorder:
    """Authlib compliance hook: remembers the token endpoint's HTTP status, which its errors do not carry."""

    def __init__(self) -> None:
        self.status: int | None = None

    def __call__(self, response: httpx.Response) -> httpx.Response:
        self.status = response.status_code
        return response


def _sort_token_failure(exc: Exception, status: int | None) -> Exception:
    if isinstance(exc, OAuthError):
        if status is not None and (status >= 500 or status == 429):
            return ProviderUnavailable(f"token endpoint answered {status}")
        return _grant_error(exc, status)
    if isinstance(exc, _STATUS_ERRORS):
        code = exc.response.status_code  # type: ignore[attr-defined]
        if code in (400, 401, 403):
            return OAuthGrantError("invalid_grant", f"token endpoint answered {code}", code)
        return ProviderUnavailable(f"token endpoint answered {code}")
    if isinstance(exc, (*_HTTP_ERRORS, ValueError)):
        return ProviderUnavailable(f"token endpoint failed: {type(exc).__name__}")
    return exc


async def exchange_code(
    provider: OAuthProvider,
    endpoints: OAuthEndpoints,
    settings: Settings,
    code: str,
    code_verifier: str | None,
) -> TokenSet:
    """Trade an authorization code (and its PKCE verifier) for tokens at the provider's token endpoint."""
    recorder = _StatusRecorder()
    async with AsyncOAuth2Client(**_client_kwargs(provider, endpoints, settings)) as client:
        client.register_compliance_hook("access_token_response", recorder)
        extra: dict[str, str] = {"code_verifier": code_verifier} if code_verifier else {}
        try:
            token = await client.fetch_token(
                endpoints.token_url, grant_type="authorization_code", code=code, **extra
            )
        except Exception as exc:
            raise _sort_token_failure(exc, recorder.status) from exc
    return token_set(token)


async def fetch_user_id(
    provider: OAuthProvider, endpoints: OAuthEndpoints, settings: Settings, access_token: str
) -> str:
    """The provider's id of the token's owner, read from the provider's own profile endpoint."""
    async with httpx.AsyncClient(timeout=_timeout(settings), follow_redirects=False) as http:
        try:
            response = await http.get(
                endpoints.api_url(provider.profile_path),
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"profile endpoint failed: {type(exc).__name__}") from exc
    return _user_id_from_response(provider, response)


def _user_id_from_response(provider: OAuthProvider, response: httpx.Response) -> str:
    if response.status_code in (401, 403):
        raise OAuthGrantError("invalid_token", "the provider rejected the access token", response.status_code)
    if response.status_code != 200:
        raise ProviderUnavailable(f"profile endpoint answered {response.status_code}")
    try:
        profile = response.json()
    except ValueError as exc:
        raise ProviderUnavailable("profile endpoint answered non-JSON") from exc
    return provider.user_id_from_profile(profile)


def refresh_tokens(
    provider: OAuthProvider, endpoints: OAuthEndpoints, settings: Settings, tokens: TokenSet
) -> TokenSet:
    """A new access token for ``tokens`` (refresh grant); without a new refresh token we keep ours."""
    if tokens.refresh_token is None:
        raise OAuthGrantError("invalid_grant", "no refresh token stored")
    recorder = _StatusRecorder()
    with OAuth2Client(**_client_kwargs(provider, endpoints, settings)) as client:
        client.register_compliance_hook("refresh_token_response", recorder)
        try:
            token = client.refresh_token(endpoints.token_url, refresh_token=tokens.refresh_token)
        except Exception as exc:
            raise _sort_token_failure(exc, recorder.status) from exc
    fresh = token_set(token)
    if fresh.refresh_token is None or fresh.scopes is None:
        fresh = TokenSet(
            access_token=fresh.access_token,
            refresh_token=fresh.refresh_token or tokens.refresh_token,
            expires_at=fresh.expires_at,
            scopes=fresh.scopes or tokens.scopes,
        )
    return fresh


def revoke_tokens(
    provider: OAuthProvider, endpoints: OAuthEndpoints, settings: Settings, tokens: TokenSet
) -> None:
    """Give the grant back at the provider. A token it no longer knows counts as revoked.

    Raises :class:`ProviderUnavailable` when the provider could not confirm (the caller retries later).
    """
    if not endpoints.revoke_url:
        return
    try:
        if provider.revoke_style is RevokeStyle.RFC7009:
            # Revoking the refresh token ends the whole grant (RFC 7009 §2.1); Google revokes both either way.
            with OAuth2Client(**_client_kwargs(provider, endpoints, settings)) as client:
                if tokens.refresh_token is not None:
                    response = client.revoke_token(
                        endpoints.revoke_url, token=tokens.refresh_token, token_type_hint="refresh_token"
                    )
                else:
                    response = client.revoke_token(
                        endpoints.revoke_url, token=tokens.access_token, token_type_hint="access_token"
                    )
        else:
            with httpx.Client(timeout=_timeout(settings), follow_redirects=False) as http:
                if provider.revoke_style is RevokeStyle.QUERY_ACCESS_TOKEN:
                    response = http.get(endpoints.revoke_url, params={"access_token": tokens.access_token})
                else:
                    response = http.delete(
                        endpoints.revoke_url, headers={"Authorization": f"Bearer {tokens.access_token}"}
                    )
    except _HTTP_ERRORS as exc:
        raise ProviderUnavailable(f"revocation failed: {type(exc).__name__}") from exc
    status = response.status_code
    if status < 300:
        return
    # RFC 7009 §2.2: an invalid token is not an error; 400/401 here mean "nothing left to revoke".
    if status in (400, 401, 404):
        return
    raise ProviderUnavailable(f"revocation endpoint answered {status}")

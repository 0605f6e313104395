"""Console sign-in: a token exchanged for a signed session cookie, CSRF tokens, and who is looking.

The cookie holds no secret, only what identifies the session, signed with ``itsdangerous`` (HMAC-SHA256 keyed
by ``RHYTHM_SECRET_KEY``) and dated, so it cannot be forged or kept past ``RHYTHM_CONSOLE_SESSION_TTL``:

- a user's session names the API token row it was opened with; every request re-reads that row, so rotating
  the token (which revokes every earlier one) or deleting the user ends the session at once;
- the operator's session carries a keyed fingerprint of the admin token, so changing ``RHYTHM_ADMIN_TOKEN``
  ends every operator session.

The cookie is scoped to ``/console`` (the browser never sends it to ``/v1``) and ``/v1`` reads only the bearer
header anyway. HttpOnly keeps it from scripts, SameSite=Strict from cross-site requests, and Secure (outside
development, see ``Settings.console_secure_cookie``) from plain http. Each state-changing form carries a CSRF
token derived from the session's random nonce (synchronizer token pattern); the sign-in form, which has no
session yet, carries one derived from a short-lived pre-session cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.console.repository import ConsoleRepository
from app.core.auth import SettingsDep
from app.core.config import Settings
from app.core.db import SessionDep
from app.core.security import constant_time_equals, hash_token
from app.core.tokens import TokenRepository
from app.models import ApiToken, User

COOKIE_NAME = "rhythm_console"
LOGIN_COOKIE_NAME = "rhythm_console_login"
COOKIE_PATH = "/console"
_LOGIN_TTL = timedelta(minutes=30)
_SALT = "rhythm.console.session"
_LOGIN_SALT = "rhythm.console.login"


class SignInRequired(Exception):
    """No valid console session: the handler redirects to the sign-in page."""


class CsrfRejected(Exception):
    """A state-changing form without the session's CSRF token (answered 403, nothing changed)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at the console: an operator (sees everything) or one user (sees only their pages)."""

    user: User | None
    is_ops: bool
    csrf_token: str

    def may_see(self, user_id: uuid.UUID) -> bool:
        return self.is_ops or (self.user is not None and self.user.id == user_id)


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=salt)


def _keyed(settings: Settings, purpose: str, value: str) -> str:
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def admin_fingerprint(settings: Settings) -> str:
    return _keyed(settings, "admin-token", settings.admin_token.get_secret_value())


def csrf_for(settings: Settings, nonce: str) -> str:
    return _keyed(settings, "csrf", nonce)


def _set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: timedelta) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=settings.console_secure_cookie,
    )


def open_user_session(
    response: Response, settings: Settings, user_id: uuid.UUID, token_id: uuid.UUID
) -> None:
    payload = {"k": "user", "u": str(user_id), "t": str(token_id), "n": secrets.token_urlsafe(16)}
    value = _serializer(settings, _SALT).dumps(payload)
    _set_cookie(response, settings, COOKIE_NAME, value, settings.console_session_ttl)


def open_ops_session(response: Response, settings: Settings) -> None:
    payload = {"k": "ops", "f": admin_fingerprint(settings), "n": secrets.token_urlsafe(16)}
    value = _serializer(settings, _SALT).dumps(payload)
    _set_cookie(response, settings, COOKIE_NAME, value, settings.console_session_ttl)


def close_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="strict", secure=settings.console_secure_cookie
    )


def _load(settings: Settings, raw: str | None, salt: str, max_age: timedelta) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        payload = _serializer(settings, salt).loads(raw, max_age=int(max_age.total_seconds()))
    except BadSignature:  # also SignatureExpired
        return None
    return payload if isinstance(payload, dict) else None


async def find_token(session: SessionDep, token: str) -> tuple[ApiToken, User] | None:
    """The active API token row of a plaintext user token (looked up by its hash, as ``/v1`` does)."""
    return await TokenRepository(session).get_active_by_hash(hash_token(token))


def is_admin_token(settings: Settings, token: str) -> bool:
    admin_token = settings.admin_token.get_secret_value()
    return bool(admin_token) and constant_time_equals(token, admin_token)


def load_session(settings: Settings, raw: str | None) -> dict[str, Any] | None:
    """The payload of a session cookie whose signature and age check out, else None."""
    payload = _load(settings, raw, _SALT, settings.console_session_ttl)
    return payload if payload is not None and isinstance(payload.get("n"), str) else None


def is_ops_session(settings: Settings, payload: dict[str, Any]) -> bool:
    """An operator's session opened with the admin token that is configured now."""
    fingerprint = payload.get("f")
    return (
        payload.get("k") == "ops"
        and bool(settings.admin_token.get_secret_value())
        and isinstance(fingerprint, str)
        and constant_time_equals(fingerprint, admin_fingerprint(settings))
    )


async def _viewer(request: Request, session: SessionDep, settings: SettingsDep) -> Viewer | None:
    payload = load_session(settings, request.cookies.get(COOKIE_NAME))
    if payload is None:
        return None
    csrf = csrf_for(settings, payload["n"])
    if payload.get("k") == "ops":
        return Viewer(user=None, is_ops=True, csrf_token=csrf) if is_ops_session(settings, payload) else None
    try:
        user_id, token_id = uuid.UUID(str(payload.get("u"))), uuid.UUID(str(payload.get("t")))
    except ValueError:
        return None
    # The token the session was opened with must still be active: rotation and deletion end the session.
    user = await ConsoleRepository(session).session_user(user_id, token_id)
    return None if user is None else Viewer(user=user, is_ops=False, csrf_token=csrf)


async def optional_viewer(request: Request, session: SessionDep, settings: SettingsDep) -> Viewer | None:
    return await _viewer(request, session, settings)


async def require_viewer(request: Request, session: SessionDep, settings: SettingsDep) -> Viewer:
    viewer = await _viewer(request, session, settings)
    if viewer is None:
        raise SignInRequired
    return viewer


async def require_ops(viewer: Annotated[Viewer, Depends(require_viewer)]) -> Viewer:
    if not viewer.is_ops:
        # The ops pages do not exist for a user, as another user's pages do not (same 404 rule as /v1).
        raise PageNotFound
    return viewer


class PageNotFound(Exception):
    """Answered with the console's 404 page: unknown, or not the viewer's to see."""


async def check_csrf(
    viewer: Annotated[Viewer, Depends(require_viewer)], csrf_token: Annotated[str, Form(max_length=128)] = ""
) -> Viewer:
    if not csrf_token or not constant_time_equals(csrf_token, viewer.csrf_token):
        raise CsrfRejected
    return viewer


OptionalViewer = Annotated[Viewer | None, Depends(optional_viewer)]
ConsoleViewer = Annotated[Viewer, Depends(require_viewer)]
OpsViewer = Annotated[Viewer, Depends(require_ops)]
# For POST routes: the viewer, once the form's CSRF token matched the session's.
CsrfViewer = Annotated[Viewer, Depends(check_csrf)]


def login_csrf(request: Request, settings: Settings) -> tuple[str, str | None]:
    """The sign-in form's CSRF token, and a new pre-session cookie value when the browser has none yet."""
    payload = _load(settings, request.cookies.get(LOGIN_COOKIE_NAME), _LOGIN_SALT, _LOGIN_TTL)
    if payload is not None and isinstance(payload.get("n"), str):
        return csrf_for(settings, payload["n"]), None
    nonce = secrets.token_urlsafe(16)
    return csrf_for(settings, nonce), _serializer(settings, _LOGIN_SALT).dumps({"n": nonce})


def set_login_cookie(response: Response, settings: Settings, value: str) -> None:
    _set_cookie(response, settings, LOGIN_COOKIE_NAME, value, _LOGIN_TTL)


def login_csrf_valid(request: Request, settings: Settings, given: str) -> bool:
    payload = _load(settings, request.cookies.get(LOGIN_COOKIE_NAME), _LOGIN_SALT, _LOGIN_TTL)
    if payload is None or not isinstance(payload.get("n"), str) or not given:
        return False
    return constant_time_equals(given, csrf_for(settings, payload["n"]))

"""Who is calling: the admin (ops token from settings) or a user (bearer token stored hashed).

Routes declare what they need with the typed dependencies ``AdminAuth``, ``CurrentUser`` or ``UserOrAdmin``.
Missing or unknown credentials are 401; a valid caller of the wrong kind is 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm.attributes import set_committed_value

from app.core.config import Settings
from app.core.db import Database, SessionDep
from app.core.errors import AppError
from app.core.races import AUTH_USER_ID
from app.core.security import constant_time_equals, hash_token
from app.core.tokens import TokenRepository
from app.models import ApiToken, User
from app.models.base import utcnow

# Updating last_used_at on every request would turn every read into a write; a coarse timestamp is enough.
_LAST_USED_RESOLUTION = timedelta(minutes=5)

_bearer = HTTPBearer(
    auto_error=False, description="`Authorization: Bearer <token>` (user token or admin token)"
)


# async, although it awaits nothing: FastAPI runs a plain ``def`` dependency in its thread pool, a hand-off
# to a worker thread and back on every request (profiled on /v1/recommend: ~5 % of its CPU for two such deps).
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def _unauthorized(message: str) -> AppError:
    return AppError(401, message, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: exactly one of ``user`` or ``is_admin``."""

    user: User | None = None
    is_admin: bool = False


async def get_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("Missing bearer token")
    token = credentials.credentials
    admin_token = settings.admin_token.get_secret_value()
    if admin_token and constant_time_equals(token, admin_token):
        return Principal(is_admin=True)
    found = await TokenRepository(session).get_active_by_hash(hash_token(token))
    if found is None:
        raise _unauthorized("Invalid or revoked token")
    api_token, user = found
    # Lets a write that fails because this user was deleted meanwhile be answered as 401 (app.core.races).
    setattr(request.state, AUTH_USER_ID, user.id)
    now = utcnow()
    if api_token.last_used_at is None or now - api_token.last_used_at > _LAST_USED_RESOLUTION:
        await _mark_used(request, api_token, now)
    return Principal(user=user)


async def _mark_used(request: Request, api_token: ApiToken, now: datetime) -> None:
    """Stamp the token in a transaction of its own, committed at once.

    In the request's transaction the stamp would hold the token row locked until the request ends, ahead of
    the user row its first insert locks; a deletion of the user (user row first, then the tokens its cascade
    deletes) would then deadlock with it. Every other path locks the user row before its rows
    (app.core.races).
    """
    db: Database = request.app.state.db
    async with db.sessionmaker() as session, session.begin():
        await TokenRepository(session).mark_used(api_token.id, now)
    # The request's own copy too, without making it dirty in the request's session.
    set_committed_value(api_token, "last_used_at", now)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise AppError(403, "This operation needs the admin token")
    return principal


async def require_user(principal: PrincipalDep) -> User:
    if principal.user is None:
        raise AppError(403, "This operation needs a user token")
    return principal.user


AdminAuth = Annotated[Principal, Depends(require_admin)]
CurrentUser = Annotated[User, Depends(require_user)]
UserOrAdmin = PrincipalDep

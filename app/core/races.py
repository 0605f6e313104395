"""Requests that lose a race against the deletion of their own user answer 401, not 500.

Authentication reads the caller's token and user without locking them. If ``DELETE /v1/users/{id}`` commits
between that read and the request's first write, the write fails: an insert of a user-owned row (a
recommendation, an idempotency key, feedback) violates its foreign key to ``users``, and the coarse
``api_tokens.last_used_at`` update matches no row (SQLAlchemy's ``StaleDataError``). On Postgres the first
successful insert takes a key-share lock on the user row, so the window closes once a request has written;
SQLite serialises writers, so there it is only the window before the write.

Locking the user row ``FOR KEY SHARE`` at authentication would close the window too, but would make every
read a row-lock write (multixacts under concurrent requests of one user) and make deletions wait for slow
policy calls. The race is rare and harmless once answered correctly, so the cheap fix is here, on the error
path only: when such an error reaches the top and the authenticated user no longer exists, the request is
answered exactly as its retry would be, 401 "token no longer valid". Any other integrity error stays a 500.

Deadlocks need more than that. A deletion locks the user row, then its cascade locks every row the user owns;
a request that held one of those rows while waiting for the user row would deadlock with it, and Postgres
aborts one of the two (seen in CI as a 500). So every path locks the user row before any row of theirs: a
single-reference insert does so through its foreign-key check; feedback (which references the recommendation
too, and whose checks may lock that first) and a recommendation naming an adapter call :func:`hold_user`
before writing; authentication stamps ``last_used_at`` in a transaction of its own (app.core.auth);
rotation and deletion take the user row ``FOR UPDATE`` first. A deadlock that still reaches the top for a
deleted user is answered like the other lost races.
"""

from __future__ import annotations

import sqlite3
import uuid

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.core.db import Database
from app.core.errors import AppError, error_response, unhandled_error
from app.models import User

log = structlog.get_logger(__name__)

# Set by authentication (app.core.auth) on ``request.state``: whose request this is.
AUTH_USER_ID = "auth_user_id"

_PG_FOREIGN_KEY_VIOLATION = "23503"
_PG_DEADLOCK_DETECTED = "40P01"


def user_gone() -> AppError:
    """The answer to a request whose user was deleted while it ran: what its retry would get."""
    return AppError(
        401, "Token no longer valid: its user was deleted", headers={"WWW-Authenticate": "Bearer"}
    )


async def hold_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Key-share lock the user's row until the transaction ends; :func:`user_gone` if it was deleted.

    Blocks while a deletion of the user is in flight (then answers 401) and keeps a later deletion waiting
    until this transaction ends. Key share does not conflict with other requests of the same user (not even
    with updates of the row's non-key columns). SQLite ignores the clause: it serialises writers anyway.
    """
    statement = select(User.id).where(User.id == user_id).with_for_update(key_share=True)
    if (await session.execute(statement)).first() is None:
        raise user_gone()


def is_deadlock(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == _PG_DEADLOCK_DETECTED


def is_foreign_key_violation(exc: IntegrityError) -> bool:
    """Whether ``exc`` is a foreign-key violation (Postgres SQLSTATE 23503, SQLite's FOREIGN KEY failure)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_FOREIGN_KEY_VIOLATION:
        return True
    if getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
        return True
    return "FOREIGN KEY constraint failed" in str(orig)


async def _user_exists(request: Request, user_id: uuid.UUID) -> bool:
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        found = await session.execute(select(User.id).where(User.id == user_id))
        return found.first() is not None


async def _user_gone(request: Request, exc: Exception) -> JSONResponse:
    user_id = getattr(request.state, AUTH_USER_ID, None)
    relevant = (
        isinstance(exc, StaleDataError)
        or (isinstance(exc, IntegrityError) and is_foreign_key_violation(exc))
        or (isinstance(exc, DBAPIError) and is_deadlock(exc))
    )
    if relevant and isinstance(user_id, uuid.UUID) and not await _user_exists(request, user_id):
        log.info("user_deleted_during_request", path=request.url.path, error=type(exc).__name__)
        gone = user_gone()
        return error_response(gone.status_code, gone.message, headers=gone.headers)
    return await unhandled_error(request, exc)


def install_race_handlers(app: FastAPI) -> None:
    app.add_exception_handler(IntegrityError, _user_gone)
    app.add_exception_handler(StaleDataError, _user_gone)
    # Only deadlocks (40P01) are considered there; any other database error stays a logged 500.
    app.add_exception_handler(DBAPIError, _user_gone)

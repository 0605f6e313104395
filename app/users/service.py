"""Users: creation with a first token, token rotation, time zone change, export of all personal data,
deletion of everything."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.connections import service as connections
from app.core.auth import Principal
from app.core.config import Settings
from app.core.crypto import DecryptionError, TokenCipher
from app.core.errors import AppError, NotFoundError
from app.core.idempotency import ADMIN, run_idempotent
from app.core.jobs import Job, enqueue
from app.core.security import display_prefix, hash_token, new_token
from app.core.tasks import PURGE_USER_ADAPTERS
from app.core.tokens import TokenRepository
from app.models import ApiToken, User
from app.models.base import utcnow
from app.users.repository import UserRepository
from app.users.schemas import (
    TokenPublic,
    UserCreate,
    UserCreatedPublic,
    UserExportPublic,
    UserListed,
    UserPublic,
    UserUpdate,
)

# Secrets and their hashes are not personal data the user can use, and exporting them would only spread them.
_EXPORT_EXCLUDE: dict[str, set[str]] = {
    "api_tokens": {"token_hash"},
    "device_connections": {"access_token_encrypted", "refresh_token_encrypted"},
    "google_channels": {"token_hash"},
    "google_calendars": {"sync_token"},
    "oauth_states": {"state_digest", "code_verifier_encrypted"},
}


def to_public(user: User) -> UserPublic:
    return UserPublic(user_id=user.id, timezone=user.timezone, created_at=user.created_at)


async def create_user(session: AsyncSession, data: UserCreate) -> UserCreatedPublic:
    """Create a user and its first API token; the plaintext token leaves the server only in this response."""
    user = await UserRepository(session).add(User(timezone=data.timezone))
    token = await _issue_token(session, user.id)
    return UserCreatedPublic(user_id=user.id, token=token)


# The first answer of a keyed POST /v1/users is stored for replay; its bearer token only sealed (AES-GCM bound
# to this column), never in plain text: the table would otherwise hold working credentials for a day, which
# api_tokens itself keeps only as hashes.
CREATED_TOKEN_CONTEXT = "idempotency_keys.response_body"


async def create_user_once(
    session: AsyncSession, settings: Settings, data: UserCreate, *, key: str, method: str, path: str
) -> tuple[UserCreatedPublic, bool]:
    """:func:`create_user` under the admin's ``Idempotency-Key``: a provisioning script that retries after a
    lost answer gets the user (and token) it first created, not a second user it will never know of.

    The key lives in the admin's scope (no user row exists to own it before this request). Returns the answer
    and whether it was replayed."""
    cipher = TokenCipher(settings.secret_key.get_secret_value())

    async def work() -> tuple[int, Any]:
        created = await create_user(session, data)
        sealed = cipher.encrypt(created.token, context=CREATED_TOKEN_CONTEXT)
        return 201, {"user_id": str(created.user_id), "token_sealed": sealed}

    stored = await run_idempotent(
        session,
        scope=ADMIN,
        key=key,
        method=method,
        path=path,
        body=data.model_dump(mode="json"),
        ttl=settings.idempotency_ttl,
        work=work,
    )
    user_id = uuid.UUID(stored.body["user_id"])
    if stored.replayed and await UserRepository(session).get(user_id) is None:
        # The admin's key outlives the user (it is not theirs), but replaying the id and token of a deleted
        # user would answer "created" with a user that does not exist; silently creating another would not be
        # a retry. Say what happened instead.
        raise AppError(
            409,
            "The user created with this Idempotency-Key has since been deleted; "
            "use a new key to create another",
            code="idempotency_user_deleted",
        )
    try:
        token = cipher.decrypt(stored.body["token_sealed"], context=CREATED_TOKEN_CONTEXT)
    except DecryptionError:
        # Only if the secret key changed since the first answer: that token cannot be shown again. Rotating
        # it (POST /v1/users/{id}/tokens) gives the user a working one.
        raise AppError(
            409,
            "The user created with this Idempotency-Key exists, but its token can no longer be shown; "
            f"rotate it: POST /v1/users/{user_id}/tokens",
            code="idempotency_answer_unavailable",
        ) from None
    return UserCreatedPublic(user_id=user_id, token=token), stored.replayed


async def _issue_token(session: AsyncSession, user_id: uuid.UUID) -> str:
    token = new_token()
    await TokenRepository(session).add(
        ApiToken(user_id=user_id, token_hash=hash_token(token), prefix=display_prefix(token))
    )
    return token


async def rotate_token(session: AsyncSession, caller: Principal, user_id: uuid.UUID) -> TokenPublic:
    """Issue a new token for the user and revoke every token they had (admin, or the user themself).

    The remedy for a leaked token. Anyone else's ID is a 404, as is an unknown one. The user's row is locked
    first, so that two rotations at once end with one active token, and a rotation racing a deletion ends
    as a 404 rather than a foreign key error.
    """
    if not caller.is_admin and (caller.user is None or caller.user.id != user_id):
        raise NotFoundError("User not found")
    if await UserRepository(session).get_for_update(user_id) is None:
        raise NotFoundError("User not found")
    revoked = await TokenRepository(session).revoke_all(user_id, utcnow())
    token = await _issue_token(session, user_id)
    return TokenPublic(user_id=user_id, token=token, prefix=display_prefix(token), revoked_tokens=revoked)


async def update_user(session: AsyncSession, user: User, data: UserUpdate) -> UserPublic:
    """Change the calling user's settings (today: the time zone their slots are computed in)."""
    await UserRepository(session).set_timezone(user, data.timezone)
    return to_public(user)


async def export_user(session: AsyncSession, user: User) -> UserExportPublic:
    """All rows of all user-owned tables (GDPR Art. 15/20)."""
    tables = await UserRepository(session).export_rows(user.id, _EXPORT_EXCLUDE)
    return UserExportPublic(user=to_public(user), exported_at=utcnow(), tables=tables)


async def delete_user(
    session: AsyncSession, settings: Settings, caller: Principal, user_id: uuid.UUID
) -> None:
    """Delete a user and every row they own. Users may delete only themselves; anyone else's ID is a 404.

    Their provider connections are revoked at the providers too, and their adapter files (derived personal
    data outside the database) purged, by workers after the commit (the pending revocations outlive the
    user's rows).
    """
    if not caller.is_admin and (caller.user is None or caller.user.id != user_id):
        raise NotFoundError("User not found")
    repo = UserRepository(session)
    # The user row first, like every request of theirs locks it before their own rows (app.core.races).
    if await repo.get_for_update(user_id) is None:
        raise NotFoundError("User not found")
    await connections.disconnect_all(session, settings, user_id, utcnow())
    if not await repo.delete(user_id):
        raise NotFoundError("User not found")
    enqueue(session, settings, Job(PURGE_USER_ADAPTERS, (str(user_id),)))


async def list_users(session: AsyncSession) -> list[UserListed]:
    """Every user with its count of active tokens (operators' CLI; token hashes never leave the table)."""
    rows = await UserRepository(session).list_with_active_token_counts()
    return [UserListed(**to_public(user).model_dump(), active_tokens=count) for user, count in rows]

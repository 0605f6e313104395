"""``Idempotency-Key`` for every mutating route (Stripe / IETF draft semantics, reliability.md §3).

* Keys are scoped to the caller, so a guessed key never replays another caller's answer: ``(user_id, key)``
  is unique for users, and ``key`` among the admin's own keys (:data:`ADMIN`, stored with ``user_id`` NULL:
  ``POST /v1/users`` creates the user, so no user row can own its key). A user's key and the admin's
  identical key are two keys.
* Same key, same request (method, path and a SHA-256 of the canonical JSON body) → the stored first answer,
  status code and body, marked with ``Idempotent-Replayed: true``.
* Same key, different request → 422 ``idempotency_key_reused``.
* The claim, the work and the stored answer are one transaction: a concurrent retry blocks on the claim until
  the first commits, then replays it. If the work fails (4xx), the transaction rolls back and nothing is
  stored, so a retry runs again — answers that depend only on stored state (404, 409) come out the same.
* Keys expire after ``idempotency_ttl`` (default 24 h); an expired key is reclaimed by the next request that
  uses it (a periodic sweep may delete them earlier).
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import Header
from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError
from app.models import IdempotencyKey, IdempotencyStatus
from app.models.base import utcnow

MAX_KEY_LENGTH = 255
REPLAY_HEADER = "Idempotent-Replayed"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[\x21-\x7e]+$",
        description="Optional. A unique value per logical request (a UUID v4 is recommended); retries with "
        "the same key and body get the first answer again. Keys expire after 24 hours.",
    ),
]


class _Admin(enum.Enum):
    ADMIN = "admin"


ADMIN = _Admin.ADMIN
"""The admin's scope. A named value rather than ``None``: a missing user id must not silently become the
admin's key space."""

Scope = uuid.UUID | Literal[_Admin.ADMIN]
"""Whose keys: a user's id, or :data:`ADMIN`."""


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status_code: int
    body: Any
    replayed: bool


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 over the method, path and canonical JSON body (key order and whitespace do not matter)."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _owned_by(scope: Scope) -> ColumnElement[bool]:
    if scope is ADMIN:
        return IdempotencyKey.user_id.is_(None)
    return IdempotencyKey.user_id == scope


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, scope: Scope, key: str) -> IdempotencyKey | None:
        statement = select(IdempotencyKey).where(_owned_by(scope), IdempotencyKey.key == key)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def claim(self, scope: Scope, row: dict[str, Any]) -> bool:
        """Insert the key unless it exists; waits for a concurrent claimer's transaction to finish first.

        The conflict target names the unique index of the scope: ``(user_id, key)`` for a user, the partial
        index on ``key WHERE user_id IS NULL`` for the admin (NULLs never conflict in the first)."""
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        values = insert(IdempotencyKey).values(**row, user_id=None if scope is ADMIN else scope)
        if scope is ADMIN:
            statement = values.on_conflict_do_nothing(
                index_elements=["key"], index_where=IdempotencyKey.user_id.is_(None)
            )
        else:
            statement = values.on_conflict_do_nothing(index_elements=["user_id", "key"])
        return (await self.session.execute(statement.returning(IdempotencyKey.id))).first() is not None

    async def delete(self, scope: Scope, key: str) -> None:
        await self.session.execute(delete(IdempotencyKey).where(_owned_by(scope), IdempotencyKey.key == key))


def _replay(row: IdempotencyKey, fingerprint: str) -> StoredAnswer:
    if row.request_hash != fingerprint:
        raise AppError(
            422,
            "This Idempotency-Key was used with a different request",
            code="idempotency_key_reused",
        )
    if row.status is not IdempotencyStatus.COMPLETED or row.response_code is None:
        raise AppError(
            409, "A request with this Idempotency-Key is still in progress", code="idempotency_in_progress"
        )
    return StoredAnswer(row.response_code, row.response_body, replayed=True)


async def run_idempotent(
    session: AsyncSession,
    *,
    scope: Scope,
    key: str,
    method: str,
    path: str,
    body: Any,
    ttl: timedelta,
    work: Callable[[], Awaitable[tuple[int, Any]]],
) -> StoredAnswer:
    """Run ``work`` once per ``(scope, key)``: its ``(status, JSON body)`` is stored and replayed for
    retries. ``scope`` is the calling user's id, or :data:`ADMIN` for the admin's own keys."""
    repo = IdempotencyRepository(session)
    fingerprint = request_fingerprint(method, path, body)
    now = utcnow()
    existing = await repo.get(scope, key)
    if existing is not None and existing.expires_at <= now:
        await repo.delete(scope, key)
        existing = None
    if existing is not None:
        return _replay(existing, fingerprint)
    claimed = await repo.claim(
        scope,
        {
            "id": uuid.uuid4(),
            "key": key,
            "method": method,
            "path": path,
            "request_hash": fingerprint,
            "status": IdempotencyStatus.IN_PROGRESS,
            "locked_at": now,
            "expires_at": now + ttl,
            "created_at": now,
        },
    )
    if not claimed:
        # A concurrent request with the same key committed first: answer as a retry of it.
        row = await repo.get(scope, key)
        if row is None:
            raise AppError(
                409,
                "A request with this Idempotency-Key is still in progress",
                code="idempotency_in_progress",
            )
        return _replay(row, fingerprint)
    status_code, answer = await work()
    row = await repo.get(scope, key)
    assert row is not None
    row.status = IdempotencyStatus.COMPLETED
    row.response_code = status_code
    row.response_body = answer
    row.locked_at = None
    return StoredAnswer(status_code, answer, replayed=False)

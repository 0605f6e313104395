"""Idempotency keys of mutating requests (Stripe/IETF draft semantics, see reliability.md §3)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin, JSONType, str_enum

# The admin's keys: no user row owns them (``POST /v1/users`` creates the user).
_ADMIN_SCOPE = text("user_id IS NULL")


class IdempotencyStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyKey(IdMixin, CreatedAtMixin, Base):
    """A client's ``Idempotency-Key``: the first response is stored and replayed for retries until it expires.

    Scoped to the caller so a guessed key can never return another caller's response: unique per
    ``(user_id, key)`` for users, and per ``key`` among the admin's keys (``user_id`` NULL; a partial index,
    as NULLs never collide in the first). A user's keys go with the user; the admin's are touched only by the
    expiry sweep.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index(
            "uq_idempotency_keys_admin_key",
            "key",
            unique=True,
            postgresql_where=_ADMIN_SCOPE,
            sqlite_where=_ADMIN_SCOPE,
        ),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    # Not UserOwnedMixin: the column is nullable here (NULL = the admin's scope), the rest is the same.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, sort_order=-5
    )

    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the request body: the same key with a different payload is the client's error (422).
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[IdempotencyStatus] = mapped_column(
        str_enum(IdempotencyStatus, "idempotency_status"), default=IdempotencyStatus.IN_PROGRESS
    )
    locked_at: Mapped[datetime | None]
    response_code: Mapped[int | None]
    response_body: Mapped[Any | None] = mapped_column(JSONType)
    expires_at: Mapped[datetime]

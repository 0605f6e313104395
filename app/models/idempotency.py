"""Idempotency keys of mutating requests (Stripe/IETF draft semantics, see reliability.md §3)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin, JSONType, UserOwnedMixin, str_enum


class IdempotencyStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyKey(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """A client's ``Idempotency-Key``: the first response is stored and replayed for retries until it expires.

    Unique per ``(user_id, key)`` so a guessed key can never return another user's response.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
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

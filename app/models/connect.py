"""Account linking state: pending authorizations and revocations the provider has not confirmed yet."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin, JSONType, UserOwnedMixin


class OAuthState(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """One authorization in flight: the callback's ``state`` identifies the user (the browser has no token).

    Only a keyed digest of ``state`` is stored (bound to the provider), so a database reader cannot complete
    someone's flow; the row is deleted when the callback consumes it (single use) and refused after
    ``expires_at``. The PKCE verifier is encrypted like the tokens it protects.
    """

    __tablename__ = "oauth_states"

    provider: Mapped[str] = mapped_column(String(32))
    state_digest: Mapped[str] = mapped_column(String(64), unique=True)
    code_verifier_encrypted: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class PendingRevocation(IdMixin, CreatedAtMixin, Base):
    """A connection that was deleted here and still has to be given back at the provider.

    Deliberately *not* owned by the user (no foreign key): deleting the user must not erase the duty to revoke
    their grant. Holds the tokens (re-encrypted for this table) and the provider's teardown payload; a worker
    retries with backoff and deletes the row once the provider confirmed.
    """

    __tablename__ = "pending_revocations"
    __table_args__ = (Index("ix_pending_revocations_next_attempt_at", "next_attempt_at"),)

    provider: Mapped[str] = mapped_column(String(32))
    # For logs and operators only (the user and the connection may be gone).
    connection_id: Mapped[uuid.UUID]
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None]
    teardown_payload: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    teardown_done_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime]
    # Set when max attempts are spent: kept for operators, no longer retried automatically.
    gave_up_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1024))

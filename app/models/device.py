"""Connections to wearables/calendars and the inbox of their webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin, JSONType, UserOwnedMixin, utcnow


class DeviceConnection(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """A user's account at a provider (wearable, calendar).

    OAuth tokens are stored only as AES-GCM ciphertext (``app.core.crypto``), bound to this table and column,
    so a leaked dump or a value copied into another column does not decrypt.
    """

    __tablename__ = "device_connections"
    __table_args__ = (UniqueConstraint("provider", "external_user_id"),)

    provider: Mapped[str] = mapped_column(String(32))
    external_user_id: Mapped[str] = mapped_column(String(255))
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None]
    scopes: Mapped[str | None] = mapped_column(String(1024))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    revoked_at: Mapped[datetime | None]
    # active | needs_reconsent | revoked (``bridges.connections.ConnectionStatus``); why, when not active.
    status: Mapped[str] = mapped_column(String(32), default="active", server_default="active")
    status_reason: Mapped[str | None] = mapped_column(String(1024))
    # Provider-specific state that is not a secret: subscription ids and expiry (Oura), backfill progress…
    provider_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class WebhookEvent(IdMixin, Base):
    """Inbox row: verified → inserted once per ``(source, external_id)`` → enqueued → ``handled_at`` set."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    # Known once the payload is mapped to a connection; personal data, so it goes with the user.
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The exact bytes received: provider signatures are computed over them (re-serialised JSON does not
    # verify), and an event that fails mapping can be replayed from them after a fix.
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    # Some providers put the whole notification in headers (Google Calendar push has an empty body).
    headers: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)

"""Google Calendar and Tasks state: the calendars we sync, their push channels, the user's corrections, tasks.

Events themselves live in ``calendar_events`` (``app.models.signals``); these tables hold what keeps them in
step with Google (sync tokens, channels, the coalescing counters) and what the user told us.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin, UserOwnedMixin, str_enum, utcnow
from domain import Action


class GoogleCalendar(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """One calendar of a linked Google account, with its sync token and the state that coalesces syncs.

    Coalescing (``bridges.google.coalesce``): every push notification bumps ``sync_requested``; a sync is
    enqueued only when none is pending (``sync_pending_since``). The sync records the counter it started from
    and, when it ends, finds out whether notifications arrived meanwhile (counter moved) and runs once more.
    ``sync_lease_until`` keeps a redelivered copy of the same job from syncing concurrently.
    """

    __tablename__ = "google_calendars"
    __table_args__ = (UniqueConstraint("connection_id", "calendar_id"),)

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("device_connections.id", ondelete="CASCADE"), index=True
    )
    # Google's calendar id (an e-mail-like string; "primary" is resolved to the real id at setup).
    calendar_id: Mapped[str] = mapped_column(String(1024))
    summary: Mapped[str | None] = mapped_column(String(1024))
    primary: Mapped[bool] = mapped_column(default=False)
    # Opaque; only from the last page of a complete listing.
    sync_token: Mapped[str | None] = mapped_column(Text)
    last_synced_at: Mapped[datetime | None]
    sync_requested: Mapped[int] = mapped_column(default=0, server_default="0")
    sync_completed: Mapped[int] = mapped_column(default=0, server_default="0")
    sync_pending_since: Mapped[datetime | None]
    sync_lease_until: Mapped[datetime | None]


class GoogleChannel(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """A push channel (``events.watch``) of one calendar. Google lists none of them: this table is the only
    record of what to renew and stop. The per-channel token is stored as its SHA-256 (we only compare)."""

    __tablename__ = "google_channels"

    calendar_row_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("google_calendars.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    resource_id: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64))
    expiration: Mapped[datetime]
    # Set when we stopped it (renewed or torn down): notifications on it are refused from then on.
    stopped_at: Mapped[datetime | None]


class CorrectionKind:
    """What a correction is keyed by: the event itself, its recurring series, or its (normalised) title."""

    EVENT = "event"
    SERIES = "series"
    TITLE = "title"


class CalendarCorrection(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """The user's "this event is X" — kept apart from the events, so a 410 wipe or a re-sync keeps it."""

    __tablename__ = "calendar_corrections"
    __table_args__ = (UniqueConstraint("user_id", "kind", "key"),)

    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(1024))
    # NULL: "this is not an action".
    action: Mapped[Action | None] = mapped_column(str_enum(Action, "action"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GoogleTask(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """One Google Tasks item (``tasks`` v1), pulled incrementally; deleted ones are kept flagged."""

    __tablename__ = "google_tasks"
    __table_args__ = (
        UniqueConstraint("connection_id", "task_id"),
        Index("ix_google_tasks_user_id_due", "user_id", "due"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("device_connections.id", ondelete="CASCADE"), index=True
    )
    tasklist_id: Mapped[str] = mapped_column(String(1024))
    task_id: Mapped[str] = mapped_column(String(1024))
    title: Mapped[str | None] = mapped_column(String(1024))
    # needsAction | completed
    status: Mapped[str] = mapped_column(String(16))
    # Tasks' due is a date: the API sends midnight UTC and drops the time.
    due: Mapped[date | None]
    completed_at: Mapped[datetime | None]
    deleted: Mapped[bool] = mapped_column(default=False)
    hidden: Mapped[bool] = mapped_column(default=False)
    updated: Mapped[datetime]

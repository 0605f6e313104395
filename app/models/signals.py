"""What the bridges learn about a person: raw signals, calendar events, and the meters derived from them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Double, ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from app.models.base import (
    METER_COLUMNS,
    Base,
    CreatedAtMixin,
    IdMixin,
    JSONType,
    MeterColumnsMixin,
    UserOwnedMixin,
    str_enum,
    unit_interval_checks,
)
from domain import Action


class SignalReading(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """One measurement from a provider (e.g. sleep hours, resting heart rate) at the time it was observed."""

    __tablename__ = "signal_readings"
    __table_args__ = (
        UniqueConstraint("user_id", "source", "kind", "observed_at"),
        Index("ix_signal_readings_user_id_observed_at", "user_id", "observed_at"),
    )

    source: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    value: Mapped[float]
    unit: Mapped[str | None] = mapped_column(String(32))
    observed_at: Mapped[datetime]
    webhook_event_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="SET NULL"), index=True
    )


# Per-meter confidence columns, named ``<meter>_confidence`` after ``domain``'s meter names.
CONFIDENCE_SUFFIX = "_confidence"
CONFIDENCE_COLUMNS: tuple[str, ...] = tuple(name + CONFIDENCE_SUFFIX for name in METER_COLUMNS)


class MeterConfidenceMixin:
    """One nullable double per meter: the engine's confidence in [0, 1] (0 for a missing meter). NULL when
    the snapshot's author gave none (snapshots stored before the bridge computed them)."""


def _confidence_column(_cls: type) -> Mapped[float | None]:
    return mapped_column(Double, nullable=True)


for _name in CONFIDENCE_COLUMNS:
    setattr(MeterConfidenceMixin, _name, declared_attr(_confidence_column))


def confidence_row(values: Sequence[float | None]) -> dict[str, float | None]:
    """``{confidence column: value}`` for an insert, from values in ``METERS`` order."""
    if len(values) != len(CONFIDENCE_COLUMNS):
        raise ValueError(f"expected {len(CONFIDENCE_COLUMNS)} confidences, got {len(values)}")
    return dict(zip(CONFIDENCE_COLUMNS, values, strict=True))


def confidences_of(row: Any) -> tuple[float | None, ...]:
    return tuple(getattr(row, name) for name in CONFIDENCE_COLUMNS)


class MeterSnapshot(IdMixin, UserOwnedMixin, CreatedAtMixin, MeterColumnsMixin, MeterConfidenceMixin, Base):
    """The five meters of a person at one moment; ``source`` says who computed them (bridge, client, …).

    A meter with no fresh input is NULL with confidence 0 (missing, not 0.5). ``provenance`` is the engine's
    account of the inputs it used and how fresh they were; ``engine_version`` names the engine that wrote it.
    """

    __tablename__ = "meter_snapshots"
    __table_args__ = (
        *unit_interval_checks(*METER_COLUMNS),
        *unit_interval_checks(*CONFIDENCE_COLUMNS),
        Index("ix_meter_snapshots_user_id_taken_at", "user_id", "taken_at"),
    )

    taken_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))
    engine_version: Mapped[str | None] = mapped_column(String(32))
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class MeterRecompute(IdMixin, UserOwnedMixin, Base):
    """Per-user coalescing of meter recomputes: one row per user, at most one task queued at a time.

    A producer that wrote readings bumps ``requested_at`` and, only if no task is queued (``queued_token`` is
    NULL), claims the slot with its own token and enqueues the task after commit. The task clears the token
    *before* it reads the readings, so a reading committed later finds the slot free and queues the next
    recompute: a burst of writes costs one recompute in flight plus at most one queued, and none is lost.
    """

    __tablename__ = "meter_recomputes"
    __table_args__ = (UniqueConstraint("user_id"),)

    requested_at: Mapped[datetime]
    queued_token: Mapped[uuid.UUID | None]
    # When the current token was taken: a slot held far longer than a recompute takes lost its message.
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    computed_at: Mapped[datetime | None]


class CalendarEvent(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """An event from the user's calendar, optionally mapped to the action it amounts to."""

    __tablename__ = "calendar_events"
    __table_args__ = (
        UniqueConstraint("user_id", "source", "external_id"),
        CheckConstraint("ends_at >= starts_at", name="ends_after_start"),
        Index("ix_calendar_events_user_id_starts_at", "user_id", "starts_at"),
    )

    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(1024))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    all_day: Mapped[bool] = mapped_column(default=False)
    action: Mapped[Action | None] = mapped_column(str_enum(Action, "action"))
    updated_at: Mapped[datetime | None]
    # Google Calendar sync (migration 0008): the calendar the event came from (its 410 wipe deletes these),
    # what the classifier read, and its verdict. ``action_source``: rule | llm | user.
    calendar_row_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("google_calendars.id", ondelete="CASCADE"), index=True
    )
    recurring_event_id: Mapped[str | None] = mapped_column(String(255))
    event_type: Mapped[str | None] = mapped_column(String(32))
    transparent: Mapped[bool] = mapped_column(default=False, server_default=false())
    attendees: Mapped[int] = mapped_column(default=0, server_default="0")
    confidence: Mapped[float | None]
    action_source: Mapped[str | None] = mapped_column(String(16))
    # e.g. "out_of_office" for an all-day absence: no action, but the meters read it.
    context: Mapped[str | None] = mapped_column(String(32))
    # The slots the event covers in the user's zone: [{"date": "2026-12-03", "slot": "MORNING"}, …].
    slots: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)

"""The calendar and Tasks inputs of the meters (``ContextInputSource``), computed from the synced rows.

Per user, at ``now``, in the user's time zone (working window 09:00–18:00 of the current day):

* ``calendar_density`` — % of the working window booked by busy (opaque, timed) events;
* ``meeting_density`` — % of it in meetings (busy events with two or more attendees);
* ``time_since_last_break`` — minutes since the last free gap of at least 15 minutes (0 when free now);
* ``focus_time`` — minutes of DEEP_WORK / ``focusTime`` blocks today;
* ``social_events_7d`` — SOCIALIZE and FAMILY_TIME events that started in the past 7 days;
* ``social_recency`` — the same events, each weighted 1/2 per day since it started (a dinner last night
  about 0.6, one six days ago 0.02);
* ``task_completion_rate`` — % done of the tasks due in the past 7 days or completed in them;
* ``deadline_proximity`` — days to the nearest due date of an open task (0: today or overdue).

An all-day out-of-office covering today makes the working window empty (densities 0): the person is off.
Nothing is made up: without a synced calendar the calendar fields stay unknown, without tasks the task ones.

The computation itself (:func:`context_inputs`) is pure, over event-like and task-like records, so that
``rhythm simulate`` computes a simulated person's inputs at a simulated moment with the same code as the
meters job, which reads the synced rows (:class:`CalendarContextSource`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.models import CalendarEvent, GoogleCalendar, GoogleTask, User
from bridges.meters.context import ContextInputs
from bridges.meters.signals import Reading
from domain import Action

SOURCE = "google"
WORK_START = time(9)
WORK_END = time(18)
BREAK_MIN = timedelta(minutes=15)
SOCIAL = (Action.SOCIALIZE, Action.FAMILY_TIME)
SOCIAL_HALF_LIFE = timedelta(days=1)
OUT_OF_OFFICE = "out_of_office"

Interval = tuple[datetime, datetime]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _minutes_within(intervals: list[Interval], window: Interval) -> float:
    total = timedelta()
    for start, end in _merge(intervals):
        overlap = min(end, window[1]) - max(start, window[0])
        if overlap > timedelta():
            total += overlap
    return total.total_seconds() / 60


def minutes_since_break(busy: list[Interval], now: datetime, day_start: datetime) -> float:
    """Minutes since the last gap of ≥ 15 min before ``now`` (blocks closer than that count as one)."""
    blocks: list[Interval] = []
    for start, end in _merge([(s, e) for s, e in busy if s < now]):
        if blocks and start - blocks[-1][1] < BREAK_MIN:
            blocks[-1] = (blocks[-1][0], end)
        else:
            blocks.append((start, end))
    if not blocks or blocks[-1][1] + BREAK_MIN <= now:
        return 0.0  # no booking, or the last one ended a break ago
    start = max(blocks[-1][0], day_start)
    return min(1440.0, max(0.0, (now - start).total_seconds() / 60))


class ContextEvent(Protocol):
    """What the inputs read of a calendar event (a ``CalendarEvent`` row, or a simulated event)."""

    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...
    @property
    def all_day(self) -> bool: ...
    @property
    def transparent(self) -> bool: ...
    @property
    def attendees(self) -> int: ...
    @property
    def action(self) -> Action | None: ...
    @property
    def event_type(self) -> str | None: ...
    @property
    def context(self) -> str | None: ...


class ContextTask(Protocol):
    """What the inputs read of a live (not deleted) Google task (a ``GoogleTask`` row, or a simulated one)."""

    @property
    def status(self) -> str: ...
    @property
    def due(self) -> date | None: ...
    @property
    def completed_at(self) -> datetime | None: ...


def calendar_inputs(events: Iterable[ContextEvent], now: datetime, tz: ZoneInfo) -> dict[str, float | None]:
    """The calendar fields at ``now`` from a synced calendar's events (any superset of today's events and
    those that started in the past 7 days; the others are ignored)."""
    today = now.astimezone(tz).date()
    day_start = datetime.combine(today, time(0), tzinfo=tz)
    day_end = day_start + timedelta(days=1)
    window = (
        datetime.combine(today, WORK_START, tzinfo=tz),
        datetime.combine(today, WORK_END, tzinfo=tz),
    )
    week_ago = now - timedelta(days=7)
    events = list(events)
    todays = [e for e in events if e.starts_at < day_end and e.ends_at > day_start]
    off = any(e.all_day and e.context == OUT_OF_OFFICE for e in todays)
    busy_events = [e for e in todays if not e.all_day and not e.transparent]
    busy = [(e.starts_at, e.ends_at) for e in busy_events]
    meetings = [(e.starts_at, e.ends_at) for e in busy_events if e.attendees >= 2]
    focus = [
        (e.starts_at, e.ends_at)
        for e in busy_events
        if e.action is Action.DEEP_WORK or e.event_type == "focusTime"
    ]
    working = (window[1] - window[0]).total_seconds() / 60
    social = [e for e in events if e.action in SOCIAL and not e.all_day and week_ago <= e.starts_at <= now]
    recency = sum(0.5 ** ((now - e.starts_at) / SOCIAL_HALF_LIFE) for e in social)
    return {
        "calendar_density": 0.0 if off else round(100 * _minutes_within(busy, window) / working, 2),
        "meeting_density": 0.0 if off else round(100 * _minutes_within(meetings, window) / working, 2),
        "time_since_last_break": round(minutes_since_break(busy, now, day_start), 1),
        "focus_time": round(_minutes_within(focus, (day_start, day_end)), 1),
        "social_events_7d": float(len(social)),
        "social_recency": round(recency, 3),
    }


def task_inputs(tasks: Iterable[ContextTask], now: datetime, tz: ZoneInfo) -> dict[str, float | None]:
    """The task fields at ``now`` from the live (not deleted) tasks; none known without any task."""
    tasks = list(tasks)
    if not tasks:
        return {}
    today = now.astimezone(tz).date()
    week_ago = today - timedelta(days=6)
    recent = [
        t
        for t in tasks
        if (t.due is not None and week_ago <= t.due <= today)
        or (t.completed_at is not None and t.completed_at >= now - timedelta(days=7))
    ]
    done = sum(1 for t in recent if t.status == "completed")
    open_dues: list[date] = [t.due for t in tasks if t.status != "completed" and t.due is not None]
    return {
        "task_completion_rate": round(100 * done / len(recent), 2) if recent else None,
        "deadline_proximity": float(max(0, (min(open_dues) - today).days)) if open_dues else None,
    }


def context_inputs(
    now: datetime,
    tz: ZoneInfo,
    events: Iterable[ContextEvent] | None,
    tasks: Iterable[ContextTask] = (),
) -> ContextInputs:
    """All the context fields at ``now``; ``events=None``: no synced calendar (its fields unknown)."""
    calendar = {} if events is None else calendar_inputs(events, now, tz)
    return ContextInputs(observed_at=now, source=SOURCE, **calendar, **task_inputs(tasks, now, tz))


class CalendarContextSource:
    """``ContextInputSource`` over a synchronous session (the meters job's): the rows that can matter at
    ``now`` go to :func:`context_inputs`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def context_readings(self, user_id: uuid.UUID, now: datetime) -> Sequence[Reading]:
        return self.inputs(user_id, now).readings()

    def inputs(self, user_id: uuid.UUID, now: datetime) -> ContextInputs:
        user = self.session.get(User, user_id)
        if user is None:
            return ContextInputs(observed_at=now, source=SOURCE)
        tz = _zone(user.timezone)
        return context_inputs(now, tz, self._events(user_id, now, tz), self._tasks(user_id))

    def _events(self, user_id: uuid.UUID, now: datetime, tz: ZoneInfo) -> Sequence[CalendarEvent] | None:
        has_calendar = self.session.execute(
            select(GoogleCalendar.id).where(GoogleCalendar.user_id == user_id).limit(1)
        ).first()
        if has_calendar is None:
            return None
        day_start = datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)
        week_ago = now - timedelta(days=7)
        return (
            self.session.execute(
                select(CalendarEvent).where(
                    CalendarEvent.user_id == user_id,
                    or_(
                        and_(
                            CalendarEvent.starts_at < day_start + timedelta(days=1),
                            CalendarEvent.ends_at > day_start,
                        ),
                        and_(CalendarEvent.starts_at >= week_ago, CalendarEvent.starts_at <= now),
                    ),
                )
            )
            .scalars()
            .all()
        )

    def _tasks(self, user_id: uuid.UUID) -> Sequence[GoogleTask]:
        return (
            self.session.execute(
                select(GoogleTask).where(GoogleTask.user_id == user_id, GoogleTask.deleted.is_(False))
            )
            .scalars()
            .all()
        )

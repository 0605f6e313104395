"""A Google Calendar API ``events`` resource → :class:`CalendarEvent`.

Fields read (Calendar API v3): ``summary``, ``description``, ``location``, ``start``/``end`` (``dateTime`` for
timed events, ``date`` for all-day ones), ``eventType``, ``attendees[]`` (``self``, ``resource``,
``responseStatus``), ``organizer.self``, ``transparency``, ``status``, ``recurringEventId``. Times become the
user's local wall time in ``tz``, which is what the time-of-day rules reason about.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, tzinfo
from typing import Any

from .classifier import CalendarEvent

# The eventType values Google documents; others may appear later and are passed through untouched.
EVENT_TYPES: tuple[str, ...] = (
    "default",
    "focusTime",
    "outOfOffice",
    "workingLocation",
    "birthday",
    "fromGmail",
)


class InvalidEvent(ValueError):
    """The resource is not a usable Calendar event (no start, unparsable times, wrong field types)."""


def _text(resource: Mapping[str, Any], key: str) -> str:
    value = resource.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(f"{key} must be a string, got {type(value).__name__}")
    return value


def _moment(resource: Mapping[str, Any], key: str, tz: tzinfo) -> tuple[datetime, bool] | None:
    """(local start or end, all-day?) of ``resource[key]``; ``None`` when absent."""
    raw = resource.get(key)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidEvent(f"{key} must be an object")
    try:
        if isinstance(raw.get("dateTime"), str):
            moment = datetime.fromisoformat(raw["dateTime"])
            if moment.tzinfo is None:
                # Google always sends an offset; a bare value can only be read in the event's own time zone.
                raise InvalidEvent(f"{key}.dateTime has no UTC offset")
            return moment.astimezone(tz), False
        if isinstance(raw.get("date"), str):
            return datetime.combine(date.fromisoformat(raw["date"]), time(0), tzinfo=tz), True
    except ValueError as exc:
        if isinstance(exc, InvalidEvent):
            raise
        raise InvalidEvent(f"{key} is not an ISO date or date-time: {exc}") from exc
    raise InvalidEvent(f"{key} has neither dateTime nor date")


def from_google_event(resource: Mapping[str, Any], tz: tzinfo) -> CalendarEvent:
    """Read one Calendar API event resource (as JSON-decoded) for :func:`bridges.actions.classify`."""
    status = _text(resource, "status") or "confirmed"
    started = _moment(resource, "start", tz)
    if started is None:
        if status == "cancelled":
            # Cancelled instances in an incremental sync carry little more than their id.
            return CalendarEvent(title=_text(resource, "summary"), status=status)
        raise InvalidEvent("event has no start")
    start, all_day = started
    ended = _moment(resource, "end", tz)
    minutes = None if ended is None else max(0, int((ended[0] - start).total_seconds() // 60))

    attendees_raw = resource.get("attendees") or []
    if not isinstance(attendees_raw, list):
        raise InvalidEvent("attendees must be a list")
    people = [a for a in attendees_raw if isinstance(a, Mapping) and not a.get("resource", False)]
    declined = any(a.get("self") is True and a.get("responseStatus") == "declined" for a in people)
    organizer = resource.get("organizer")
    organizer_self = bool(organizer.get("self", False)) if isinstance(organizer, Mapping) else None
    recurring = resource.get("recurringEventId")

    return CalendarEvent(
        title=_text(resource, "summary"),
        description=_text(resource, "description"),
        location=_text(resource, "location"),
        event_type=_text(resource, "eventType") or "default",
        attendees=len(people),
        organizer_self=organizer_self,
        start=start,
        minutes=minutes,
        all_day=all_day,
        transparent=resource.get("transparency") == "transparent",
        status=status,
        declined=declined,
        recurring_event_id=recurring if isinstance(recurring, str) else None,
    )

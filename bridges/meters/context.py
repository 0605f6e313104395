"""The interface the calendar bridge (and the task list) fills: the day-structure inputs of the meters.

Until a bridge provides them these inputs are simply absent, and the meters that depend on them are missing
rather than neutral. A field left ``None`` is "not known", never 0.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Protocol

from bridges.meters.signals import Reading, SignalKind

# Field name -> kind; every value is in that kind's canonical unit (percent, minutes, a count, days).
_FIELD_KINDS: dict[str, SignalKind] = {
    "calendar_density": SignalKind.CALENDAR_DENSITY,
    "meeting_density": SignalKind.MEETING_DENSITY,
    "time_since_last_break": SignalKind.TIME_SINCE_LAST_BREAK,
    "focus_time": SignalKind.FOCUS_TIME,
    "social_events_7d": SignalKind.SOCIAL_EVENTS_7D,
    "social_recency": SignalKind.SOCIAL_RECENCY,
    "task_completion_rate": SignalKind.TASK_COMPLETION_RATE,
    "deadline_proximity": SignalKind.DEADLINE_PROXIMITY,
}


@dataclass(frozen=True, slots=True)
class ContextInputs:
    """What the calendar and task sources know about a user's day at ``observed_at``.

    Units: densities and the completion rate in percent (0-100), times in minutes, the deadline in days
    (0 = due today or overdue), social events as a count over the past 7 days and as that count with each
    event weighted 1/2 per day of age.
    """

    observed_at: datetime
    source: str
    calendar_density: float | None = None
    meeting_density: float | None = None
    time_since_last_break: float | None = None
    focus_time: float | None = None
    social_events_7d: float | None = None
    social_recency: float | None = None
    task_completion_rate: float | None = None
    deadline_proximity: float | None = None

    def readings(self) -> list[Reading]:
        """The known fields as validated readings (:class:`ReadingRejected` on an impossible value)."""
        out: list[Reading] = []
        for f in fields(self):
            kind = _FIELD_KINDS.get(f.name)
            value = getattr(self, f.name)
            if kind is not None and value is not None:
                out.append(Reading.create(kind, value, kind.unit, self.observed_at, self.source))
        return out


class ContextInputSource(Protocol):
    """Implemented by the calendar bridge: the context readings of one user up to ``now``."""

    def context_readings(self, user_id: uuid.UUID, now: datetime) -> Sequence[Reading]: ...


class NoContextInputs:
    """The source in use until a calendar bridge exists: nothing is known, so nothing is made up."""

    def context_readings(self, user_id: uuid.UUID, now: datetime) -> Sequence[Reading]:
        return ()


# Sources the meters recompute asks, in registration order. The calendar bridge registers its own at import
# (like webhook providers in ``bridges.providers``); none registered means the context inputs are missing.
_SOURCES: list[ContextInputSource] = []


def register_context_source(source: ContextInputSource) -> None:
    """Add ``source`` to the sources every recompute asks (registering the same object again is a no-op)."""
    if not any(existing is source for existing in _SOURCES):
        _SOURCES.append(source)


def unregister_context_source(source: ContextInputSource) -> None:
    """Remove ``source`` (tests, and a bridge that is switched off)."""
    _SOURCES[:] = [existing for existing in _SOURCES if existing is not source]


def context_sources() -> tuple[ContextInputSource, ...]:
    return tuple(_SOURCES)

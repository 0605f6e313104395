"""Local time → (weekday, slot) of a person, and the whole-day history window.

Slots, in the person's own time zone (``users.timezone``):

======== ===============
Morning  05:00 – 11:59
Afternoon 12:00 – 16:59
Evening  17:00 – 21:59
Night    22:00 – 04:59
======== ===============

A *slot day* starts at 05:00 local time, so the hours after midnight belong to the previous day's Night:
Saturday 01:30 is Friday Night. Day and slot of a recommendation, and the window of its history, are computed
in slot days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain import Slot

DAY_START_HOUR = 5
# First local hour of each slot; Night runs past midnight until the next slot day starts.
SLOT_START_HOURS: dict[Slot, int] = {Slot.MORNING: 5, Slot.AFTERNOON: 12, Slot.EVENING: 17, Slot.NIGHT: 22}


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The user's zone; an unknown name (which the users API refuses) reads as UTC rather than failing."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class LocalSlot:
    date: date  # the slot day (Night after midnight: the previous calendar day)
    slot: Slot

    @property
    def weekday(self) -> int:
        return self.date.weekday()


def local_slot(at: datetime, tz: ZoneInfo) -> LocalSlot:
    """The slot day and slot that the aware datetime ``at`` falls in, in zone ``tz``."""
    local = at.astimezone(tz)
    hour = local.hour
    if hour < DAY_START_HOUR:
        return LocalSlot(local.date() - timedelta(days=1), Slot.NIGHT)
    if hour < SLOT_START_HOURS[Slot.AFTERNOON]:
        return LocalSlot(local.date(), Slot.MORNING)
    if hour < SLOT_START_HOURS[Slot.EVENING]:
        return LocalSlot(local.date(), Slot.AFTERNOON)
    if hour < SLOT_START_HOURS[Slot.NIGHT]:
        return LocalSlot(local.date(), Slot.EVENING)
    return LocalSlot(local.date(), Slot.NIGHT)


def slot_day_start(day: date, tz: ZoneInfo) -> datetime:
    """05:00 local time on ``day``: where that slot day begins (aware)."""
    return datetime.combine(day, time(DAY_START_HOUR), tzinfo=tz)


def window_start(current: LocalSlot, days: int, tz: ZoneInfo) -> datetime:
    """Start of a history window of ``days`` slot days ending with the current one.

    It moves in whole days: every request of one slot day sees the same start, so a user's prompts only grow
    by appended lines during the day, and the model server's prefix cache keeps hitting.
    """
    return slot_day_start(current.date - timedelta(days=days - 1), tz)

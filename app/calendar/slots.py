"""Which slots (Morning … Night, in the user's zone) an event covers."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.recommend.slots import SLOT_START_HOURS, LocalSlot, local_slot
from domain import Slot

# A multi-day block (a week away) is context, not a week of one action; cap what one event can claim.
MAX_SLOTS = 28


def slot_start(slot: LocalSlot, tz: ZoneInfo) -> datetime:
    return datetime.combine(slot.date, time(SLOT_START_HOURS[slot.slot]), tzinfo=tz)


def next_slot(slot: LocalSlot) -> LocalSlot:
    if slot.slot is Slot.NIGHT:
        return LocalSlot(slot.date + timedelta(days=1), Slot.MORNING)
    return LocalSlot(slot.date, Slot(slot.slot + 1))


def covered_slots(start: datetime, end: datetime, tz: ZoneInfo) -> list[LocalSlot]:
    """The slots ``[start, end)`` overlaps; an instant event covers the slot it starts in."""
    current = local_slot(start, tz)
    covered = [current]
    while len(covered) < MAX_SLOTS:
        current = next_slot(current)
        if slot_start(current, tz) >= end:
            break
        covered.append(current)
    return covered


def encode(slots: list[LocalSlot]) -> list[dict[str, str]]:
    return [{"date": s.date.isoformat(), "slot": s.slot.name} for s in slots]


def covers(encoded: list[dict[str, str]] | None, slot: LocalSlot) -> bool:
    return bool(encoded) and {"date": slot.date.isoformat(), "slot": slot.slot.name} in (encoded or [])

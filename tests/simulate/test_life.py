"""The simulated person's own calendar life acts on their true meters: which event is lived in which slot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.simulate import calendar as calendar_sim
from app.simulate.runner import Person, own_actions
from domain import ACTION_INDEX, Action, Slot

DAY = datetime(2026, 11, 4, tzinfo=UTC)  # a Wednesday


def life(title: str) -> calendar_sim.LifeEvent:
    return next(e for e in calendar_sim.LIFE if e.title == title)


def plan(user_id: uuid.UUID, title: str, *, doomed: bool = False) -> calendar_sim.PlannedLife:
    event = life(title)
    return calendar_sim.PlannedLife(user_id, event, DAY + timedelta(hours=event.hour), doomed)


def test_the_first_event_that_happened_in_a_slot_is_what_the_person_does_there() -> None:
    people = [Person(index=i, user_id=uuid.uuid4(), token=f"t{i}", arm="all") for i in range(4)]
    a, b, c, d = (p.user_id for p in people)
    plans = [
        plan(a, "Birthday party"),  # 19:00, Evening
        plan(a, "Spin class"),  # 07:00, Morning
        plan(b, "Tennis with Jo", doomed=True),  # cancelled the next day: it did not happen
        plan(b, "Parents evening at school"),  # 18:00, Evening
        plan(c, "Flight to Berlin"),  # 15:00, none of the ten actions
        plan(c, "Quarterly planning"),  # 14:00, Afternoon, same slot as the flight
        plan(d, "Book club"),  # 19:00, Evening
    ]
    by_slot = {slot: own_actions(people, plans, int(slot)).tolist() for slot in Slot}
    none = -1
    assert by_slot[Slot.MORNING] == [ACTION_INDEX[Action.EXERCISE], none, none, none]
    assert by_slot[Slot.AFTERNOON] == [none, none, ACTION_INDEX[Action.ADMIN_WORK], none]
    assert by_slot[Slot.EVENING] == [
        ACTION_INDEX[Action.SOCIALIZE],
        ACTION_INDEX[Action.FAMILY_TIME],
        none,
        ACTION_INDEX[Action.SOCIALIZE],
    ]
    assert by_slot[Slot.NIGHT] == [none] * 4

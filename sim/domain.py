"""The shared vocabulary of Rhythm: actions, slots, meters, responses and interactions.

Everything that talks about a person's day — the simulator, the prompt renderer, the policy backends, the HTTP
API and the bridges — uses these types, so the order of the enums is part of the contract: index ``i`` of a
probability vector is ``ACTIONS[i]`` everywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

SLOTS_PER_DAY = 4
DAYS_PER_WEEK = 7
SLOTS_PER_WEEK = SLOTS_PER_DAY * DAYS_PER_WEEK  # 28
DAY_NAMES: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Action(enum.StrEnum):
    DEEP_WORK = "DEEP_WORK"
    ADMIN_WORK = "ADMIN_WORK"
    LEARN = "LEARN"
    SLEEP = "SLEEP"
    EXERCISE = "EXERCISE"
    MEDITATE = "MEDITATE"
    FAMILY_TIME = "FAMILY_TIME"
    SOCIALIZE = "SOCIALIZE"
    ME_TIME = "ME_TIME"
    BINGE_WATCH = "BINGE_WATCH"

    # Shadows str.index on purpose: Action.X.index is the position in every probability vector.
    @property
    def index(self) -> int:  # type: ignore[override]
        return ACTION_INDEX[self]


ACTIONS: tuple[Action, ...] = tuple(Action)
ACTION_INDEX: dict[Action, int] = {a: i for i, a in enumerate(ACTIONS)}
N_ACTIONS = len(ACTIONS)


class Slot(enum.IntEnum):
    MORNING = 0
    AFTERNOON = 1
    EVENING = 2
    NIGHT = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def from_label(cls, label: str) -> Slot:
        return cls[label.upper()]


class Meter(enum.StrEnum):
    VITALITY = "vitality"
    COGNITION = "cognition"
    PROGRESS = "progress"
    SERENITY = "serenity"
    CONNECTION = "connection"

    @property
    def label(self) -> str:
        return self.value.capitalize()


METERS: tuple[Meter, ...] = tuple(Meter)
N_METERS = len(METERS)


class Response(enum.StrEnum):
    ACCEPTED = "accepted"
    IGNORED = "ignored"
    RESCHEDULED = "rescheduled"

    @property
    def reward(self) -> int:
        """Feedback is the reward: Accept = +1, Ignore / Reschedule = -1."""
        return 1 if self is Response.ACCEPTED else -1


RESPONSES: tuple[Response, ...] = tuple(Response)


@dataclass(frozen=True, slots=True)
class Meters:
    """The five meters, each in [0, 1]."""

    vitality: float
    cognition: float
    progress: float
    serenity: float
    connection: float

    def __post_init__(self) -> None:
        for meter in METERS:
            value = getattr(self, meter.value)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{meter.value}={value!r} is outside [0, 1]")

    @classmethod
    def neutral(cls) -> Meters:
        return cls(0.5, 0.5, 0.5, 0.5, 0.5)

    @classmethod
    def from_sequence(cls, values: Sequence[float]) -> Meters:
        if len(values) != N_METERS:
            raise ValueError(f"expected {N_METERS} meter values, got {len(values)}")
        return cls(*(float(v) for v in values))

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.vitality, self.cognition, self.progress, self.serenity, self.connection)


@dataclass(frozen=True, slots=True)
class SlotState:
    """Where a person is now: weekday (0 = Monday), slot of the day, and meters."""

    day: int
    slot: Slot
    meters: Meters

    def __post_init__(self) -> None:
        if not 0 <= self.day < DAYS_PER_WEEK:
            raise ValueError(f"day must be in [0, {DAYS_PER_WEEK}), got {self.day}")


@dataclass(frozen=True, slots=True)
class Interaction:
    """One past recommendation and what the person did with it."""

    state: SlotState
    action: Action
    response: Response

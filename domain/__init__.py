"""The shared vocabulary of Rhythm: actions, slots, meters, responses and interactions.

Everything that talks about a person's day — the simulator, the prompt renderer, the policy backends, the HTTP
API and the bridges — uses these types, so the order of the enums is part of the contract: index ``i`` of a
probability vector is ``ACTIONS[i]`` everywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    """The five meters. This is the one place their names are spelled out."""

    VITALITY = "vitality"
    COGNITION = "cognition"
    PROGRESS = "progress"
    SERENITY = "serenity"
    CONNECTION = "connection"

    @property
    def label(self) -> str:
        return self.value.capitalize()


METERS: tuple[Meter, ...] = tuple(Meter)
METER_INDEX: dict[Meter, int] = {m: i for i, m in enumerate(METERS)}
# The meter names as the database columns, the API's JSON fields and the prompt use them.
METER_NAMES: tuple[str, ...] = tuple(m.value for m in METERS)
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


class Meters:
    """The five meters, each in [0, 1], in ``METERS`` order.

    Built positionally (``Meters(0.7, 0.6, 0.4, 0.5, 0.3)``) or from a mapping keyed by meter name; read by
    meter (``meters[Meter.VITALITY]``). There are no per-meter attributes on purpose: the names live in
    :class:`Meter` alone, so adding or renaming a meter changes one definition and everything else follows.
    """

    __slots__ = ("_missing", "_values")
    _values: tuple[float, ...]
    _missing: frozenset[Meter]

    def __init__(self, *values: float, missing: Iterable[Meter | str] = ()) -> None:
        # Built for every line of every prompt (121 per recommendation), so the common case (five values in
        # range, none missing) avoids the per-meter zip and a fresh empty frozenset.
        if len(values) != N_METERS:
            raise ValueError(f"expected {N_METERS} meter values, got {len(values)}")
        floats = tuple(map(float, values))
        for index, value in enumerate(floats):
            if not 0.0 <= value <= 1.0:  # NaN fails too
                raise ValueError(f"{METERS[index].value}={values[index]!r} is outside [0, 1]")
        object.__setattr__(self, "_values", floats)
        object.__setattr__(
            self, "_missing", frozenset(Meter(m) for m in missing) if missing else _NONE_MISSING
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Meters is immutable")

    def __getitem__(self, meter: Meter | str) -> float:
        return self._values[METER_INDEX[Meter(meter)]]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Meters) and self._values == other._values and self._missing == other._missing

    def __hash__(self) -> int:
        return hash((self._values, self._missing))

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{m.value}=missing" if m in self._missing else f"{m.value}={v!r}"
            for m, v in zip(METERS, self._values, strict=True)
        )
        return f"Meters({inner})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if not self._missing:
            return (Meters, self._values)
        return (_meters_with_missing, (self._values, tuple(sorted(self._missing))))

    @property
    def missing(self) -> frozenset[Meter]:
        """Meters with no fresh input (the bridge stored NULL, confidence 0). Their value is a stand-in the
        caller chose (the neutral 0.5 for numeric consumers); a renderer that has a token for a missing meter
        shows that token instead."""
        return self._missing

    @classmethod
    def with_missing(cls, values: Sequence[float | None], neutral: float = 0.5) -> Meters:
        """From values in ``METERS`` order where ``None`` is a missing meter (stood in for by ``neutral``)."""
        if len(values) != N_METERS:
            raise ValueError(f"expected {N_METERS} meter values, got {len(values)}")
        return cls(
            *(neutral if value is None else float(value) for value in values),
            missing=[meter for meter, value in zip(METERS, values, strict=True) if value is None],
        )

    @classmethod
    def neutral(cls) -> Meters:
        return cls(*(0.5,) * N_METERS)

    @classmethod
    def from_sequence(cls, values: Sequence[float]) -> Meters:
        return cls(*(float(v) for v in values))

    @classmethod
    def from_mapping(cls, values: Mapping[str, float]) -> Meters:
        """From ``{meter name: value}`` with every meter present (extra keys are an error too)."""
        if set(values) != set(METER_NAMES):
            raise ValueError(f"expected exactly the meters {list(METER_NAMES)}, got {sorted(values)}")
        return cls(*(float(values[name]) for name in METER_NAMES))

    def as_tuple(self) -> tuple[float, ...]:
        return self._values

    def as_dict(self) -> dict[str, float]:
        """``{meter name: value}`` in ``METERS`` order: table columns and JSON fields are named this way."""
        return dict(zip(METER_NAMES, self._values, strict=True))


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


_NONE_MISSING: frozenset[Meter] = frozenset()


def _meters_with_missing(values: tuple[float, ...], missing: tuple[str, ...]) -> Meters:
    return Meters(*values, missing=missing)

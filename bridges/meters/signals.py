"""The signal vocabulary: what a reading is a measurement of, in which unit, and which values are possible.

Every provider module maps its own payload onto :class:`SignalKind` and hands the value over in the unit the
provider used; :meth:`Reading.create` converts it to the kind's one canonical unit and rejects what cannot be
right (a wrong unit, a value outside the kind's range, a naive timestamp) with a reason. Nothing is clamped:
a Garmin ``averageStressLevel`` of -1 ("not enough data") is *rejected*, never read as a calm 0.

HRV is two kinds on purpose. WHOOP, Oura, Garmin and Google report RMSSD; Apple HealthKit reports SDNN. The
two are different statistics with different scales, so they never share a baseline (reference §4).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


class Dimension(enum.Enum):
    """What a unit measures; conversion happens only within one dimension."""

    DURATION = "duration"
    HEART_RATE = "heart_rate"
    SCORE = "score"
    RATIO = "ratio"
    COUNT = "count"


class Unit(enum.StrEnum):
    """Units a reading may arrive in. Each names its dimension and its factor to that dimension's base."""

    MILLISECOND = "ms"
    SECOND = "s"
    MINUTE = "min"
    HOUR = "h"
    DAY = "d"
    BPM = "bpm"
    # Health Auto Export writes heart rates as "count/min".
    COUNT_PER_MINUTE = "count/min"
    SCORE = "score"  # a 0-100 score
    SCORE_OF_21 = "score/21"  # WHOOP strain
    SCORE_OF_10 = "score/10"
    SCORE_OF_5 = "score/5"
    PERCENT = "%"
    FRACTION = "fraction"  # 0-1
    COUNT = "count"

    @property
    def dimension(self) -> Dimension:
        return _UNIT_SCALE[self][0]

    @property
    def factor(self) -> float:
        """Multiply a value in this unit by ``factor`` to get the dimension's base unit."""
        return _UNIT_SCALE[self][1]


# Base units: seconds, beats per minute, a 0-100 score, percent, a plain count.
_UNIT_SCALE: dict[Unit, tuple[Dimension, float]] = {
    Unit.MILLISECOND: (Dimension.DURATION, 0.001),
    Unit.SECOND: (Dimension.DURATION, 1.0),
    Unit.MINUTE: (Dimension.DURATION, 60.0),
    Unit.HOUR: (Dimension.DURATION, 3600.0),
    Unit.DAY: (Dimension.DURATION, 86400.0),
    Unit.BPM: (Dimension.HEART_RATE, 1.0),
    Unit.COUNT_PER_MINUTE: (Dimension.HEART_RATE, 1.0),
    Unit.SCORE: (Dimension.SCORE, 1.0),
    Unit.SCORE_OF_21: (Dimension.SCORE, 100.0 / 21.0),
    Unit.SCORE_OF_10: (Dimension.SCORE, 10.0),
    Unit.SCORE_OF_5: (Dimension.SCORE, 20.0),
    Unit.PERCENT: (Dimension.RATIO, 1.0),
    Unit.FRACTION: (Dimension.RATIO, 100.0),
    Unit.COUNT: (Dimension.COUNT, 1.0),
}


def convert(value: float, from_unit: Unit, to_unit: Unit) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit``; :class:`ReadingRejected` across dimensions."""
    if from_unit.dimension is not to_unit.dimension:
        raise ReadingRejected(
            "unit_mismatch",
            f"cannot convert {from_unit.value!r} ({from_unit.dimension.value}) "
            f"to {to_unit.value!r} ({to_unit.dimension.value})",
        )
    if from_unit is to_unit:
        return value
    return value * from_unit.factor / to_unit.factor


class SignalKind(enum.StrEnum):
    """What a reading measures. The value is the ``kind`` column of ``signal_readings``."""

    # Body, from wearables and the phone.
    HRV_RMSSD = "hrv_rmssd"
    HRV_SDNN = "hrv_sdnn"
    RESTING_HEART_RATE = "resting_heart_rate"
    SLEEP_SCORE = "sleep_score"
    SLEEP_DURATION = "sleep_duration"
    DEEP_SLEEP_PERCENT = "deep_sleep_percent"
    SLEEP_DEEP = "sleep_deep"
    SLEEP_REM = "sleep_rem"
    SLEEP_LIGHT = "sleep_light"
    SLEEP_AWAKE = "sleep_awake"
    STEPS = "steps"
    STRESS_SCORE = "stress_score"
    STRAIN_SCORE = "strain_score"
    RECOVERY_SCORE = "recovery_score"
    READINESS_SCORE = "readiness_score"
    # Day structure, from the calendar bridge, the task list and the phone.
    CALENDAR_DENSITY = "calendar_density"
    MEETING_DENSITY = "meeting_density"
    TIME_SINCE_LAST_BREAK = "time_since_last_break"
    FOCUS_TIME = "focus_time"
    SOCIAL_EVENTS_7D = "social_events_7d"
    SOCIAL_RECENCY = "social_recency"
    MESSAGES_SENT = "messages_sent"
    TASK_COMPLETION_RATE = "task_completion_rate"
    DEADLINE_PROXIMITY = "deadline_proximity"

    @property
    def spec(self) -> SignalSpec:
        return SIGNAL_SPECS[self]

    @property
    def unit(self) -> Unit:
        """The canonical unit every stored reading of this kind is in."""
        return SIGNAL_SPECS[self].unit


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """A kind's canonical unit and its valid range (inclusive), in that unit."""

    unit: Unit
    low: float
    high: float
    description: str


# Ranges are what a correct measurement can be, not what is typical: a value outside is a mapping bug, a
# provider's "no data" sentinel or a unit error, and is rejected rather than clamped.
SIGNAL_SPECS: dict[SignalKind, SignalSpec] = {
    SignalKind.HRV_RMSSD: SignalSpec(Unit.MILLISECOND, 1.0, 300.0, "HRV, RMSSD (nightly or morning)"),
    SignalKind.HRV_SDNN: SignalSpec(Unit.MILLISECOND, 1.0, 400.0, "HRV, SDNN (Apple HealthKit)"),
    SignalKind.RESTING_HEART_RATE: SignalSpec(Unit.BPM, 25.0, 150.0, "resting heart rate"),
    SignalKind.SLEEP_SCORE: SignalSpec(Unit.SCORE, 0.0, 100.0, "provider sleep score"),
    SignalKind.SLEEP_DURATION: SignalSpec(Unit.MINUTE, 0.0, 1440.0, "time asleep in the main sleep"),
    SignalKind.DEEP_SLEEP_PERCENT: SignalSpec(Unit.PERCENT, 0.0, 100.0, "deep (slow-wave) share of sleep"),
    SignalKind.SLEEP_DEEP: SignalSpec(Unit.MINUTE, 0.0, 1440.0, "deep sleep stage"),
    SignalKind.SLEEP_REM: SignalSpec(Unit.MINUTE, 0.0, 1440.0, "REM sleep stage"),
    SignalKind.SLEEP_LIGHT: SignalSpec(Unit.MINUTE, 0.0, 1440.0, "light sleep stage"),
    SignalKind.SLEEP_AWAKE: SignalSpec(Unit.MINUTE, 0.0, 1440.0, "awake time in bed"),
    SignalKind.STEPS: SignalSpec(Unit.COUNT, 0.0, 200_000.0, "steps in a day"),
    SignalKind.STRESS_SCORE: SignalSpec(Unit.SCORE, 0.0, 100.0, "stress, provider scale normalised to 0-100"),
    SignalKind.STRAIN_SCORE: SignalSpec(Unit.SCORE, 0.0, 100.0, "day strain (WHOOP 0-21 rescaled to 0-100)"),
    SignalKind.RECOVERY_SCORE: SignalSpec(Unit.SCORE, 0.0, 100.0, "recovery (WHOOP)"),
    SignalKind.READINESS_SCORE: SignalSpec(Unit.SCORE, 0.0, 100.0, "readiness (Oura, Terra)"),
    SignalKind.CALENDAR_DENSITY: SignalSpec(Unit.PERCENT, 0.0, 100.0, "share of working hours booked"),
    SignalKind.MEETING_DENSITY: SignalSpec(Unit.PERCENT, 0.0, 100.0, "share of working hours in meetings"),
    SignalKind.TIME_SINCE_LAST_BREAK: SignalSpec(Unit.MINUTE, 0.0, 1440.0, "time since the last free gap"),
    SignalKind.FOCUS_TIME: SignalSpec(Unit.MINUTE, 0.0, 1440.0, "focus blocks in the day"),
    SignalKind.SOCIAL_EVENTS_7D: SignalSpec(Unit.COUNT, 0.0, 500.0, "social events in the past 7 days"),
    SignalKind.SOCIAL_RECENCY: SignalSpec(
        Unit.COUNT, 0.0, 500.0, "social events of the past 7 days, each weighted 1/2 per day of age"
    ),
    SignalKind.MESSAGES_SENT: SignalSpec(Unit.COUNT, 0.0, 100_000.0, "messages sent in a day"),
    SignalKind.TASK_COMPLETION_RATE: SignalSpec(Unit.PERCENT, 0.0, 100.0, "tasks done of tasks due"),
    SignalKind.DEADLINE_PROXIMITY: SignalSpec(
        Unit.DAY, 0.0, 365.0, "days to the next deadline (0 = today/late)"
    ),
}


class ReadingRejected(ValueError):
    """A reading that cannot be right. ``code`` is machine-readable; ``reason`` says what was wrong."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement, always in its kind's canonical unit, with an aware UTC timestamp.

    Build it with :meth:`create`, which converts and validates; the constructor itself only accepts
    values that are already canonical and valid, so a ``Reading`` in hand is always trustworthy.
    """

    kind: SignalKind
    value: float
    unit: Unit
    observed_at: datetime
    source: str

    def __post_init__(self) -> None:
        spec = SIGNAL_SPECS[self.kind]
        if self.unit is not spec.unit:
            raise ReadingRejected(
                "not_canonical",
                f"{self.kind.value} is stored in {spec.unit.value!r}, got {self.unit.value!r}",
            )
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ReadingRejected("not_a_number", f"{self.kind.value} value must be a number")
        if not math.isfinite(self.value):
            raise ReadingRejected("not_finite", f"{self.kind.value} value {self.value!r} is not finite")
        if not spec.low <= self.value <= spec.high:
            raise ReadingRejected(
                "out_of_range",
                f"{self.kind.value}={self.value:g} {spec.unit.value} is outside "
                f"[{spec.low:g}, {spec.high:g}] {spec.unit.value}",
            )
        if self.observed_at.tzinfo is None or self.observed_at.utcoffset() is None:
            raise ReadingRejected("naive_timestamp", "observed_at must carry a UTC offset")
        if not self.source:
            raise ReadingRejected("no_source", "a reading must name its source")
        # Normalise to UTC once so that day bucketing and ordering never depend on the sender's offset.
        try:
            object.__setattr__(self, "observed_at", self.observed_at.astimezone(UTC))
        except OverflowError:
            # Year 1 or 9999 with an offset has no UTC form: a provider's nonsense, not a crash.
            raise ReadingRejected(
                "bad_timestamp", f"observed_at {self.observed_at.isoformat()} is out of range"
            ) from None
        object.__setattr__(self, "value", float(self.value))

    @classmethod
    def create(
        cls,
        kind: SignalKind | str,
        value: float,
        unit: Unit | str,
        observed_at: datetime,
        source: str,
    ) -> Reading:
        """Convert ``value`` from ``unit`` to the kind's canonical unit and validate it.

        Raises :class:`ReadingRejected` (a ``ValueError``) for an unknown kind or unit, a unit of another
        dimension, a non-finite or out-of-range value, a naive timestamp or an empty source.
        """
        try:
            kind = SignalKind(kind)
        except ValueError:
            raise ReadingRejected("unknown_kind", f"unknown signal kind {kind!r}") from None
        try:
            unit = Unit(unit)
        except ValueError:
            raise ReadingRejected("unknown_unit", f"unknown unit {unit!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReadingRejected("not_a_number", f"{kind.value} value must be a number")
        canonical = kind.unit
        return cls(kind, convert(float(value), unit, canonical), canonical, observed_at, source)


@dataclass(frozen=True, slots=True)
class RawReading:
    """A reading as a provider mapping or an upload hands it over, before conversion."""

    kind: SignalKind | str
    value: float
    unit: Unit | str
    observed_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one raw reading of a batch was not accepted (its position in the batch, a code and a reason)."""

    index: int
    code: str
    reason: str


def normalise(raw: Iterable[RawReading]) -> tuple[list[Reading], list[Rejection]]:
    """Convert a batch: each raw reading is either accepted or rejected with its reason, none dropped."""
    accepted: list[Reading] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(raw):
        try:
            accepted.append(Reading.create(item.kind, item.value, item.unit, item.observed_at, item.source))
        except ReadingRejected as exc:
            rejected.append(Rejection(index, exc.code, exc.reason))
    return accepted, rejected


def sleep_stage_readings(
    *,
    deep: float,
    rem: float,
    light: float,
    awake: float | None,
    unit: Unit | str,
    observed_at: datetime,
    source: str,
) -> list[Reading]:
    """The four stage readings of one night plus the derived deep-sleep share.

    Deep % is deep / (deep + REM + light), i.e. of time asleep, not of time in bed: WHOOP's stage summary
    gives in-bed and awake time, and its documented formula subtracts the awake time (reference §2.1).
    """
    stages = {
        SignalKind.SLEEP_DEEP: deep,
        SignalKind.SLEEP_REM: rem,
        SignalKind.SLEEP_LIGHT: light,
    }
    if awake is not None:
        stages[SignalKind.SLEEP_AWAKE] = awake
    readings = [Reading.create(kind, value, unit, observed_at, source) for kind, value in stages.items()]
    asleep = deep + rem + light
    if asleep > 0:
        readings.append(
            Reading.create(
                SignalKind.DEEP_SLEEP_PERCENT, 100.0 * deep / asleep, Unit.PERCENT, observed_at, source
            )
        )
    return readings

"""Readings → the five meters, each in [0, 1] or missing, with its confidence and provenance.

Pure and database-free: :func:`estimate_meters` takes a user's readings (the last five weeks are enough) and a
moment, and returns a :class:`MeterReport` ready to be stored as a snapshot. The design (docs/meters.md):

1. Each meter has a few inputs (:data:`WEIGHTS`, the proxy table). An input names one kind, or several
   alternatives (RMSSD or SDNN, never mixed), and a statistic: the latest day, or the 7-day trend.
2. The input's series — one kind from one source — gives its latest day's value, compared with that series'
   baseline (``bridges.meters.baselines``) as a z-score in [-3, 3].
3. Freshness: an input is fully fresh for ``fresh_for`` after its last reading, then halves every
   ``half_life`` (:data:`DECAY`); under 1/16 it is expired and dropped.
4. The meter's z is the mean of its inputs' signed z, weighted by |weight| x freshness, multiplied by the
   freshest input's freshness, so a meter whose inputs all went stale drifts toward neutral instead of
   freezing; the value is ``logistic(z)``. No unexpired input: the meter is ``None`` with confidence 0 —
   missing, not 0.5.
5. Confidence: the share of the meter's total |weight| that is present, each input counted at its freshness
   times its baseline's reliability (0.5 + 0.5 w for personal baselines, 1 for fixed scales).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from bridges.meters.baselines import (
    BASELINE_DAYS,
    MIN_TREND_DAYS,
    PRIORS,
    TREND_DAYS,
    Baseline,
    DayValue,
    baseline,
    daily_values,
    local_day,
    window,
)
from bridges.meters.signals import Reading, SignalKind
from domain import METERS, Meter, Meters

ENGINE_VERSION = "meters/1"
Statistic = Literal["latest", "trend"]
# Readings stamped a little after "now" (a phone's clock running fast) still count, as age 0.
CLOCK_SKEW = timedelta(minutes=5)
# Below this freshness (four half-lives past fresh) an input is expired rather than merely stale.
FRESHNESS_FLOOR = 1.0 / 16.0
GAIN = 1.0


@dataclass(frozen=True, slots=True)
class Input:
    """One row of the proxy table: which kinds (in order of preference), which statistic, which weight.

    The weight's sign is the direction: a negative weight means "more of this, lower meter".
    """

    kinds: tuple[SignalKind, ...]
    weight: float
    statistic: Statistic = "latest"


_HRV = (SignalKind.HRV_RMSSD, SignalKind.HRV_SDNN)

# The proxy table. Weights are relative within a meter; docs/meters.md shows the same table.
WEIGHTS: dict[Meter, tuple[Input, ...]] = {
    Meter.VITALITY: (
        Input((SignalKind.SLEEP_SCORE,), 1.0),
        Input(_HRV, 1.0),
        Input((SignalKind.RESTING_HEART_RATE,), -0.8),
        Input((SignalKind.STEPS,), 0.5),
        Input((SignalKind.SLEEP_DURATION,), 0.5),
        Input((SignalKind.RECOVERY_SCORE, SignalKind.READINESS_SCORE), 0.8),
    ),
    Meter.COGNITION: (
        Input((SignalKind.DEEP_SLEEP_PERCENT,), 1.0),
        Input((SignalKind.TIME_SINCE_LAST_BREAK,), -0.8),
        Input((SignalKind.CALENDAR_DENSITY,), -0.6),
    ),
    Meter.PROGRESS: (
        Input((SignalKind.TASK_COMPLETION_RATE,), 1.0),
        # Days of slack to the nearest deadline: fewer days, more pressure, less headway.
        Input((SignalKind.DEADLINE_PROXIMITY,), 0.6),
        Input((SignalKind.FOCUS_TIME,), 0.8),
    ),
    Meter.SERENITY: (
        Input(_HRV, 1.0, "trend"),
        Input((SignalKind.STRESS_SCORE,), -1.0),
        Input((SignalKind.MEETING_DENSITY,), -0.6),
    ),
    Meter.CONNECTION: (
        Input((SignalKind.SOCIAL_EVENTS_7D,), 1.0),
        # The same events, yesterday's dinner weighing more than last week's: feeling connected fades in days.
        Input((SignalKind.SOCIAL_RECENCY,), 1.0),
        Input((SignalKind.MESSAGES_SENT,), 0.6),
    ),
}


@dataclass(frozen=True, slots=True)
class Decay:
    """How long a kind's latest value stays fully fresh, and its half-life afterwards."""

    fresh_for: timedelta
    half_life: timedelta

    def freshness(self, age: timedelta) -> float:
        if age <= self.fresh_for:
            return 1.0
        return math.pow(0.5, (age - self.fresh_for) / self.half_life)


_H = timedelta(hours=1)
_NIGHTLY = Decay(24 * _H, 24 * _H)  # one value per night serves the day that follows
_DAY_PLAN = Decay(12 * _H, 12 * _H)  # today's calendar is about today
_DAY_TOTAL = Decay(36 * _H, 24 * _H)  # yesterday's total, stamped at the end of yesterday
_SLOW = Decay(24 * _H, 48 * _H)  # weekly counts and task state change slowly

DECAY: dict[SignalKind, Decay] = {
    SignalKind.HRV_RMSSD: _NIGHTLY,
    SignalKind.HRV_SDNN: _NIGHTLY,
    SignalKind.RESTING_HEART_RATE: _NIGHTLY,
    SignalKind.SLEEP_SCORE: _NIGHTLY,
    SignalKind.SLEEP_DURATION: _NIGHTLY,
    SignalKind.DEEP_SLEEP_PERCENT: _NIGHTLY,
    SignalKind.SLEEP_DEEP: _NIGHTLY,
    SignalKind.SLEEP_REM: _NIGHTLY,
    SignalKind.SLEEP_LIGHT: _NIGHTLY,
    SignalKind.SLEEP_AWAKE: _NIGHTLY,
    SignalKind.RECOVERY_SCORE: _NIGHTLY,
    SignalKind.READINESS_SCORE: _NIGHTLY,
    SignalKind.STRAIN_SCORE: _NIGHTLY,
    SignalKind.STEPS: _DAY_TOTAL,
    SignalKind.MESSAGES_SENT: _DAY_TOTAL,
    # Stress moves within hours; a morning reading says little about the evening.
    SignalKind.STRESS_SCORE: Decay(6 * _H, 12 * _H),
    SignalKind.CALENDAR_DENSITY: _DAY_PLAN,
    SignalKind.MEETING_DENSITY: _DAY_PLAN,
    SignalKind.FOCUS_TIME: _DAY_PLAN,
    SignalKind.TIME_SINCE_LAST_BREAK: Decay(timedelta(minutes=30), _H),
    SignalKind.SOCIAL_EVENTS_7D: _SLOW,
    SignalKind.SOCIAL_RECENCY: _DAY_PLAN,
    SignalKind.TASK_COMPLETION_RATE: _SLOW,
    SignalKind.DEADLINE_PROXIMITY: _SLOW,
}


@dataclass(frozen=True, slots=True)
class InputUsed:
    """One input that went into a meter: what it was, how it compared, how fresh it was."""

    kind: SignalKind
    source: str
    statistic: Statistic
    value: float  # raw scale: the latest day's value, or the 7-day mean for a trend
    z: float
    weight: float
    freshness: float
    reliability: float
    observed_at: datetime
    age: timedelta
    baseline: Baseline

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "source": self.source,
            "statistic": self.statistic,
            "value": self.value,
            "unit": self.kind.unit.value,
            "z": round(self.z, 4),
            "weight": self.weight,
            "freshness": round(self.freshness, 4),
            "reliability": round(self.reliability, 4),
            "observed_at": self.observed_at.isoformat(),
            "age_s": round(self.age.total_seconds()),
            "baseline": {
                "mean": round(self.baseline.mean, 4),
                "sd": round(self.baseline.sd, 4),
                "n_days": self.baseline.n_days,
                "personal_weight": round(self.baseline.personal_weight, 4),
            },
        }


@dataclass(frozen=True, slots=True)
class MeterEstimate:
    """One meter: ``value`` in [0, 1] or ``None`` (missing), ``confidence`` in [0, 1] (0 when missing)."""

    meter: Meter
    value: float | None
    confidence: float
    inputs: tuple[InputUsed, ...] = ()


@dataclass(frozen=True, slots=True)
class MeterReport:
    """All five meters at ``taken_at``, in ``METERS`` order, with what they were computed from."""

    taken_at: datetime
    estimates: Mapping[Meter, MeterEstimate]
    readings_considered: int = 0
    rejected_future: int = field(default=0)

    def __getitem__(self, meter: Meter) -> MeterEstimate:
        return self.estimates[meter]

    def values(self) -> dict[str, float | None]:
        """``{meter name: value or None}``: the snapshot's nullable meter columns."""
        return {m.value: self.estimates[m].value for m in METERS}

    def confidences(self) -> dict[str, float]:
        return {m.value: self.estimates[m].confidence for m in METERS}

    def meters(self) -> Meters | None:
        """A complete :class:`Meters`, or ``None`` when any meter is missing (the policy must not see 0.5)."""
        values = [self.estimates[m].value for m in METERS]
        if any(v is None for v in values):
            return None
        return Meters(*(v for v in values if v is not None))

    def provenance(self) -> dict[str, Any]:
        """JSON-ready: engine version, when, and per meter its value, confidence and inputs with their age."""
        return {
            "engine": ENGINE_VERSION,
            "taken_at": self.taken_at.isoformat(),
            "readings_considered": self.readings_considered,
            "readings_after_taken_at": self.rejected_future,
            "missing": [m.value for m in METERS if self.estimates[m].value is None],
            "meters": {
                m.value: {
                    "value": self.estimates[m].value,
                    "confidence": round(self.estimates[m].confidence, 4),
                    "inputs": [i.as_dict() for i in self.estimates[m].inputs],
                }
                for m in METERS
            },
        }


@dataclass(frozen=True, slots=True)
class _Series:
    kind: SignalKind
    source: str
    days: list[DayValue]


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _series(readings: Iterable[Reading], now: datetime, tz: tzinfo) -> dict[SignalKind, list[_Series]]:
    grouped: dict[tuple[SignalKind, str], list[Reading]] = {}
    for reading in readings:
        grouped.setdefault((reading.kind, reading.source), []).append(reading)
    today = local_day(now, tz)
    out: dict[SignalKind, list[_Series]] = {}
    for (kind, source), items in sorted(grouped.items()):
        prior = PRIORS[kind]
        days = daily_values(items, prior.fold, tz)
        if prior.whole_days_only:
            days = [d for d in days if d.day < today]
        if days:
            out.setdefault(kind, []).append(_Series(kind, source, days))
    return out


def _evaluate(spec: Input, series: Mapping[SignalKind, list[_Series]], now: datetime) -> InputUsed | None:
    # Among the alternatives, the series with the most recent reading wins; a tie goes to the kind listed
    # first (RMSSD before SDNN). Each series keeps its own baseline: kinds and devices are never mixed.
    best: _Series | None = None
    for kind in spec.kinds:
        for candidate in series.get(kind, []):
            if best is None or candidate.days[-1].observed_at > best.days[-1].observed_at:
                best = candidate
    if best is None:
        return None
    latest = best.days[-1]
    age = max(timedelta(0), now - latest.observed_at)
    freshness = DECAY[best.kind].freshness(age)
    if freshness < FRESHNESS_FLOOR:
        return None
    prior = PRIORS[best.kind]
    if spec.statistic == "trend":
        recent = window(best.days, latest.day + timedelta(days=1), TREND_DAYS)
        if len(recent) < MIN_TREND_DAYS:
            return None
        # The normal range is the 28 days before the trend window, so the trend is not compared with itself.
        start = latest.day - timedelta(days=TREND_DAYS - 1)
        base = baseline(prior, window(best.days, start, BASELINE_DAYS))
        transformed = math.fsum(prior.transform.apply(d.value) for d in recent) / len(recent)
        value = math.fsum(d.value for d in recent) / len(recent)
    else:
        base = baseline(prior, window(best.days, latest.day, BASELINE_DAYS))
        transformed = prior.transform.apply(latest.value)
        value = latest.value
    reliability = 0.5 + 0.5 * base.personal_weight if prior.personal else 1.0
    return InputUsed(
        kind=best.kind,
        source=best.source,
        statistic=spec.statistic,
        value=value,
        z=base.z(transformed),
        weight=spec.weight,
        freshness=freshness,
        reliability=reliability,
        observed_at=latest.observed_at,
        age=age,
        baseline=base,
    )


def _combine(meter: Meter, used: list[InputUsed]) -> MeterEstimate:
    if not used:
        return MeterEstimate(meter, None, 0.0)
    total_weight = math.fsum(abs(i.weight) for i in WEIGHTS[meter])
    mass = math.fsum(abs(i.weight) * i.freshness for i in used)
    z = math.fsum(i.weight * i.freshness * i.z for i in used) / mass
    z *= max(i.freshness for i in used)
    confidence = math.fsum(abs(i.weight) * i.freshness * i.reliability for i in used) / total_weight
    return MeterEstimate(meter, _logistic(GAIN * z), min(1.0, confidence), tuple(used))


def estimate_meters(readings: Iterable[Reading], now: datetime, tz: tzinfo = UTC) -> MeterReport:
    """The five meters at ``now`` from one user's ``readings``, days bucketed in the user's ``tz``.

    Readings after ``now`` (beyond a small clock skew) are ignored, so recomputing an old snapshot gives the
    answer it would have given then. Pass at least the last ``BASELINE_DAYS + TREND_DAYS`` days; older
    readings are harmless but unused.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a UTC offset")
    horizon = now + CLOCK_SKEW
    considered: list[Reading] = []
    future = 0
    for reading in readings:
        if reading.observed_at > horizon:
            future += 1
        else:
            considered.append(reading)
    series = _series(considered, now, tz)
    estimates: dict[Meter, MeterEstimate] = {}
    for meter in METERS:
        used = [u for spec in WEIGHTS[meter] if (u := _evaluate(spec, series, now)) is not None]
        estimates[meter] = _combine(meter, used)
    return MeterReport(now.astimezone(UTC), estimates, len(considered), future)

"""Per-user rolling baselines: where a person's own normal lies, and how far today is from it.

Readings of one kind from one source are first folded into one value per local day (gaps are simply days
without a value), then compared with the 28 days before the latest day. A new user has no such history, so
each kind has a population prior, and the personal statistics take over as days accumulate:

- mean:  mu = w * personal_mean + (1 - w) * population_mean, with w = n / (n + K) over n valid days;
- spread: sigma^2 pools the personal sample variance with the population's within-person variance
  (K pseudo-days of it), and while w < 1 the unresolved between-person spread (1 - w) * tau^2 widens it,
  so a brand-new user is judged against the whole population and a user with 28 days against themself.

HRV is compared on the ln scale (ln RMSSD, reference §4), counts with many orders of magnitude on ln(1 + x).
Kinds that are already a judgement on a fixed scale (a 0-100 device score, a completion rate) are compared
with a fixed centre and scale instead: the device has personalised them already, and "stress 80/100"
is high for everyone.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from bridges.meters.signals import Reading, SignalKind

# Pseudo-days the population prior is worth: after a week the personal mean has half the say (Plews et al.
# need about a week of morning readings for a stable weekly mean).
PRIOR_DAYS = 7.0
BASELINE_DAYS = 28
TREND_DAYS = 7
# Fewer valid days than this in the 7-day window and the trend is not computed (Plews: >= 3 per week).
MIN_TREND_DAYS = 3
Z_CLIP = 3.0


class Transform(enum.Enum):
    IDENTITY = "identity"
    LN = "ln"
    LN1P = "ln1p"

    def apply(self, value: float) -> float:
        if self is Transform.LN:
            return math.log(value)
        if self is Transform.LN1P:
            return math.log1p(value)
        return value


class DailyFold(enum.Enum):
    """How several readings of one local day become the day's value."""

    MEAN = "mean"  # repeated measurements of the same thing (HRV, resting HR)
    LAST = "last"  # a re-scored or re-synced value replaces the earlier one (scores, durations)
    MAX = "max"  # a running total that only grows during the day (steps, messages)


@dataclass(frozen=True, slots=True)
class Prior:
    """A kind's population defaults, on the transformed scale.

    ``personal`` kinds shrink toward the user's own baseline; the others keep ``mean`` as a fixed centre and
    ``within_sd`` as a fixed scale. ``between_sd`` is how much people's own means differ (tau).
    """

    mean: float
    within_sd: float
    between_sd: float
    transform: Transform = Transform.IDENTITY
    fold: DailyFold = DailyFold.LAST
    personal: bool = True
    # Running daily totals (steps, messages): the current, unfinished day is not compared with whole days.
    whole_days_only: bool = False


def _fixed(centre: float, scale: float, fold: DailyFold = DailyFold.LAST) -> Prior:
    return Prior(centre, scale, 0.0, fold=fold, personal=False)


# Population defaults. Sources: reference §4 for HRV/RHR and the device score bands (WHOOP recovery bands,
# Garmin stress 0-25 rest ... 76-100 high, Oura 1-100); the rest are round figures for adults that only matter
# until a week of the user's own data outweighs them.
PRIORS: dict[SignalKind, Prior] = {
    SignalKind.HRV_RMSSD: Prior(math.log(42.0), 0.20, 0.45, Transform.LN, DailyFold.MEAN),
    SignalKind.HRV_SDNN: Prior(math.log(45.0), 0.25, 0.40, Transform.LN, DailyFold.MEAN),
    SignalKind.RESTING_HEART_RATE: Prior(60.0, 3.0, 8.0, fold=DailyFold.MEAN),
    SignalKind.SLEEP_DURATION: Prior(420.0, 50.0, 45.0),
    SignalKind.DEEP_SLEEP_PERCENT: Prior(17.0, 4.0, 5.0),
    SignalKind.SLEEP_DEEP: Prior(75.0, 20.0, 20.0),
    SignalKind.SLEEP_REM: Prior(90.0, 25.0, 20.0),
    SignalKind.SLEEP_LIGHT: Prior(240.0, 45.0, 40.0),
    SignalKind.SLEEP_AWAKE: Prior(40.0, 20.0, 15.0),
    SignalKind.STEPS: Prior(7000.0, 2500.0, 3000.0, fold=DailyFold.MAX, whole_days_only=True),
    SignalKind.SLEEP_SCORE: _fixed(75.0, 12.0),
    SignalKind.STRESS_SCORE: _fixed(40.0, 20.0, DailyFold.MEAN),
    SignalKind.STRAIN_SCORE: _fixed(50.0, 20.0),
    SignalKind.RECOVERY_SCORE: _fixed(55.0, 20.0),
    SignalKind.READINESS_SCORE: _fixed(75.0, 12.0),
    SignalKind.CALENDAR_DENSITY: Prior(40.0, 15.0, 15.0),
    SignalKind.MEETING_DENSITY: Prior(20.0, 10.0, 12.0),
    SignalKind.TIME_SINCE_LAST_BREAK: _fixed(90.0, 60.0),
    SignalKind.FOCUS_TIME: Prior(90.0, 60.0, 60.0),
    SignalKind.SOCIAL_EVENTS_7D: Prior(3.0, 1.5, 2.0),
    # Three events spread over a week weigh 3 x (1 - 2^-7) / (7 ln 2) = 0.6 on average.
    SignalKind.SOCIAL_RECENCY: Prior(0.6, 0.5, 0.4),
    SignalKind.MESSAGES_SENT: Prior(
        math.log1p(30.0), 0.5, 1.0, Transform.LN1P, DailyFold.MAX, whole_days_only=True
    ),
    SignalKind.TASK_COMPLETION_RATE: _fixed(60.0, 20.0),
    # ln(1 + days): the difference between 0 and 3 days matters far more than between 30 and 33.
    SignalKind.DEADLINE_PROXIMITY: Prior(math.log1p(7.0), 0.8, 0.0, Transform.LN1P, personal=False),
}


@dataclass(frozen=True, slots=True)
class DayValue:
    """One local day of one series: the folded value (raw scale) and its latest reading's timestamp."""

    day: date
    value: float
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a value of this series is compared with, on the transformed scale.

    ``n_days`` valid days were found in the window; ``personal_weight`` is w = n / (n + K) (0 for
    fixed-scale kinds).
    """

    mean: float
    sd: float
    n_days: int
    personal_weight: float

    def z(self, transformed: float) -> float:
        """Standard score, clipped to [-3, 3] so one absurd night cannot saturate a meter on its own."""
        return max(-Z_CLIP, min(Z_CLIP, (transformed - self.mean) / self.sd))


def daily_values(readings: Iterable[Reading], fold: DailyFold, tz: tzinfo) -> list[DayValue]:
    """Fold one series' readings into one value per local day, oldest first."""
    by_day: dict[date, list[Reading]] = {}
    for reading in readings:
        by_day.setdefault(reading.observed_at.astimezone(tz).date(), []).append(reading)
    days: list[DayValue] = []
    for day in sorted(by_day):
        items = sorted(by_day[day], key=lambda r: r.observed_at)
        if fold is DailyFold.MEAN:
            value = math.fsum(r.value for r in items) / len(items)
        elif fold is DailyFold.MAX:
            value = max(r.value for r in items)
        else:
            value = items[-1].value
        days.append(DayValue(day, value, items[-1].observed_at))
    return days


def baseline(prior: Prior, history: Sequence[DayValue]) -> Baseline:
    """The baseline from ``history`` (the days in the window, raw scale) shrunk toward ``prior``."""
    if not prior.personal:
        return Baseline(prior.mean, prior.within_sd, len(history), 0.0)
    values = [prior.transform.apply(d.value) for d in history]
    n = len(values)
    w = n / (n + PRIOR_DAYS)
    personal_mean = math.fsum(values) / n if n else prior.mean
    mean = w * personal_mean + (1.0 - w) * prior.mean
    if n >= 2:
        sample_var = math.fsum((v - personal_mean) ** 2 for v in values) / (n - 1)
        within_var = (PRIOR_DAYS * prior.within_sd**2 + (n - 1) * sample_var) / (PRIOR_DAYS + n - 1)
    else:
        within_var = prior.within_sd**2
    # A floor on the spread: a user whose last 28 values were identical (a stuck sensor, a flat calendar)
    # must not turn the first ordinary change into a 3-sigma event.
    within_var = max(within_var, (0.25 * prior.within_sd) ** 2)
    sd = math.sqrt(within_var + (1.0 - w) * prior.between_sd**2)
    return Baseline(mean, sd, n, w)


def window(days: Sequence[DayValue], end: date, length: int) -> list[DayValue]:
    """The days in ``[end - length, end)``."""
    start = end - timedelta(days=length)
    return [d for d in days if start <= d.day < end]


def local_day(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()

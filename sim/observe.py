"""The observation model: what a wearable would measure of a simulated person whose true meters are known.

Each person gets a device baseline of their own (resting HR, ln RMSSD, sleep need, daily steps), drawn once;
each day's signals move around it with the person's true meters, plus measurement noise, and some days are
missing altogether (the ring left on the charger). The direction and rough size of each effect follow the
proxy table of the meters engine (docs/meters.md): the engine z-scores a signal against the person's own 28
days, so a signal that moves by ``k`` of its day-to-day spread per logit unit of the meter is read back as
that meter. ``rhythm simulate`` reports how well the engine recovers the meters: a consistency check of this
model against its inverse, not evidence about real people.

A person with a Google account also keeps a task list (:class:`TaskLists`): tasks come in at a personal rate,
each due a few days later, and an open task is ticked off on a given day with a probability that rises with
the person's true progress that morning; the meters engine reads the list back as the share of the week's
tasks done and the days to the nearest open deadline (``bridges.google.context``).

Pure numpy and vectorised over users, like the rest of :mod:`sim`; units are the providers' (ms, bpm,
seconds, 0-100 scores, counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domain import METER_INDEX, Meter

VITALITY = METER_INDEX[Meter.VITALITY]
COGNITION = METER_INDEX[Meter.COGNITION]
PROGRESS = METER_INDEX[Meter.PROGRESS]
SERENITY = METER_INDEX[Meter.SERENITY]

# Logit of a meter is clipped here: a meter of exactly 0 or 1 must not become an infinite signal.
_LOGIT_CLIP = 3.0
# Share of days with no sleep record / no daily summary.
DEFAULT_MISSING = 0.08


def _logit(m: np.ndarray) -> np.ndarray:
    p = np.clip(m, 1e-3, 1.0 - 1e-3)
    return np.asarray(np.clip(np.log(p / (1.0 - p)), -_LOGIT_CLIP, _LOGIT_CLIP))


@dataclass(frozen=True)
class DeviceBaselines:
    """Per person (N,): where their signals sit on an average day."""

    resting_hr: np.ndarray
    ln_rmssd: np.ndarray
    sleep_minutes: np.ndarray
    steps: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator, n: int) -> DeviceBaselines:
        # Between-person spreads as in bridges.meters.baselines.PRIORS (tau): people differ, devices agree.
        return DeviceBaselines(
            resting_hr=rng.normal(60.0, 6.0, n).clip(42.0, 85.0),
            ln_rmssd=rng.normal(np.log(42.0), 0.35, n).clip(np.log(15.0), np.log(120.0)),
            sleep_minutes=rng.normal(430.0, 30.0, n).clip(330.0, 540.0),
            steps=rng.normal(8000.0, 2000.0, n).clip(2500.0, 16000.0),
        )


@dataclass(frozen=True)
class DayObservation:
    """One morning's signals for N people; ``has_sleep`` / ``has_daily`` mark the days a record exists."""

    rmssd_ms: np.ndarray
    resting_hr_bpm: np.ndarray
    asleep_s: np.ndarray
    deep_s: np.ndarray
    light_s: np.ndarray
    rem_s: np.ndarray
    awake_s: np.ndarray
    sleep_score: np.ndarray
    stress: np.ndarray
    steps: np.ndarray
    has_sleep: np.ndarray
    has_daily: np.ndarray


def observe(
    rng: np.random.Generator,
    base: DeviceBaselines,
    meters: np.ndarray,
    *,
    missing: float = DEFAULT_MISSING,
    noise: float = 1.0,
) -> DayObservation:
    """The signals a device records for people whose true meters are ``meters (N, 5)`` this morning.

    ``noise`` scales every measurement error (0: noiseless, for tests of the inverse).
    """
    n = meters.shape[0]
    zv = _logit(meters[:, VITALITY])
    zc = _logit(meters[:, COGNITION])
    zs = _logit(meters[:, SERENITY])

    def err(sd: float) -> np.ndarray:
        return np.asarray(rng.normal(0.0, sd * noise, n))

    # HRV carries both recovery (vitality) and calm (serenity: the engine reads its 7-day trend).
    ln_rmssd = base.ln_rmssd + 0.16 * (0.6 * zv + 0.4 * zs) + err(0.05)
    resting_hr = base.resting_hr - 2.5 * zv + err(1.0)
    asleep_min = (base.sleep_minutes + 40.0 * zv + err(12.0)).clip(150.0, 720.0)
    deep_pct = (17.0 + 3.5 * zc + err(1.0)).clip(4.0, 35.0)
    rem_pct = (22.0 + err(2.0)).clip(10.0, 35.0)
    asleep_s = asleep_min * 60.0
    deep_s = asleep_s * deep_pct / 100.0
    rem_s = asleep_s * rem_pct / 100.0
    light_s = asleep_s - deep_s - rem_s
    awake_s = (25.0 - 6.0 * zv + err(5.0)).clip(2.0, 120.0) * 60.0
    # Device scores are already personalised judgements on a fixed 0-100 scale.
    sleep_score = (75.0 + 10.0 * zv + err(3.0)).clip(1.0, 100.0)
    stress = (40.0 - 16.0 * zs + err(4.0)).clip(0.0, 100.0)
    steps = (base.steps * np.exp(0.15 * zv + err(0.15))).clip(0.0, 60000.0)
    return DayObservation(
        rmssd_ms=np.exp(ln_rmssd),
        resting_hr_bpm=resting_hr,
        asleep_s=asleep_s,
        deep_s=deep_s,
        light_s=light_s,
        rem_s=rem_s,
        awake_s=awake_s,
        sleep_score=sleep_score,
        stress=stress,
        steps=np.round(steps),
        has_sleep=np.asarray(rng.random(n) >= missing),
        has_daily=np.asarray(rng.random(n) >= missing),
    )


# Task lists. A task is due 1-6 days after it comes in (never today: a task put in this morning and due
# today would say nothing about progress). The daily chance of ticking an open task off is
# logistic(TASK_DONE_BASE + TASK_DONE_SLOPE * logit(progress) + the person's diligence): 0.23 at progress 0.5,
# 0.69 two logit units up, 0.04 two down. Measured after three weeks at a constant progress (300 people), the
# engine's completion rate (share done of the tasks due or completed in the past week; fixed scale 60 ± 20 %)
# is 61 % at progress 0.27, 82 % at 0.5, 94 % at 0.73: about one scale unit per logit unit below 0.5, less
# above, where it saturates. Simulated people mostly live below 0.5 (mean true progress 0.24 in the run of
# docs/simulate.md), so their rates sit around the scale's centre. The days to the nearest open due date are
# 0 (something due today or overdue) for most people below 0.5: that input speaks only at the top.
TASK_DUE_DAYS = (1, 6)
TASK_DONE_BASE = -1.2
TASK_DONE_SLOPE = 1.0
# Between people: tasks a day (a list kept for everything or for the big things only) and diligence (some
# tick everything off, some let done tasks linger); a device-free analogue of DeviceBaselines.
TASKS_PER_DAY = (1.0, 3.0)
DILIGENCE_SD = 0.4


@dataclass
class TaskLists:
    """Every task of N people so far, by day index of the run: ``due`` (N, M) with -1 where a person has no
    M-th task, ``done`` (N, M) the day it was ticked off (-1: open), ``created`` (N, M)."""

    per_day: np.ndarray
    diligence: np.ndarray
    due: np.ndarray
    done: np.ndarray
    created: np.ndarray

    @staticmethod
    def empty(rng: np.random.Generator, n: int) -> TaskLists:
        none = np.full((n, 0), -1, dtype=np.int64)
        return TaskLists(
            per_day=rng.uniform(*TASKS_PER_DAY, n),
            diligence=rng.normal(0.0, DILIGENCE_SD, n),
            due=none,
            done=none.copy(),
            created=none.copy(),
        )

    def day(
        self, rng: np.random.Generator, day: int, meters: np.ndarray, *, missing: float = DEFAULT_MISSING
    ) -> None:
        """Morning of ``day``: open tasks ticked off with the day's chance (not at all on a day the person
        did not open the list, share ``missing``), then today's new tasks put in."""
        n = meters.shape[0]
        chance = 1.0 / (
            1.0 + np.exp(-(TASK_DONE_BASE + TASK_DONE_SLOPE * _logit(meters[:, PROGRESS]) + self.diligence))
        )
        chance = np.where(rng.random(n) >= missing, chance, 0.0)
        is_open = (self.due >= 0) & (self.done < 0)
        ticked = is_open & (rng.random(self.due.shape) < chance[:, None])
        self.done = np.where(ticked, day, self.done)
        new = rng.poisson(self.per_day)
        width = int(new.max(initial=0))
        if width == 0:
            return
        columns = np.arange(width)[None, :] < new[:, None]
        due = np.where(columns, day + rng.integers(TASK_DUE_DAYS[0], TASK_DUE_DAYS[1] + 1, (n, width)), -1)
        self.due = np.concatenate([self.due, due], axis=1)
        self.done = np.concatenate([self.done, np.full((n, width), -1, dtype=np.int64)], axis=1)
        self.created = np.concatenate([self.created, np.where(columns, day, -1)], axis=1)

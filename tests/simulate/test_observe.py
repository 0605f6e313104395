"""The observation model and its inverse, without a stack: the Terra pushes built from a day's signals are
what the bridge parses, and the meters engine reads a good or a bad day back in the right direction; the
same for the task list and progress."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from app.simulate import terra
from app.simulate.calendar import task_records
from bridges.google.context import context_inputs
from bridges.meters import SignalKind, estimate_meters
from bridges.meters.signals import Reading, normalise
from bridges.terra.provider import TerraProvider
from domain import METER_INDEX, Meter
from sim.observe import DeviceBaselines, TaskLists, observe

PROVIDER = TerraProvider("secret")
DAY = datetime(2026, 9, 7, tzinfo=UTC)


def _meters(vitality: float, cognition: float, serenity: float, n: int = 1) -> np.ndarray:
    meters = np.full((n, 5), 0.5)
    meters[:, METER_INDEX[Meter.VITALITY]] = vitality
    meters[:, METER_INDEX[Meter.COGNITION]] = cognition
    meters[:, METER_INDEX[Meter.SERENITY]] = serenity
    return meters


def _readings(user: uuid.UUID, meters: np.ndarray, day: datetime, base: DeviceBaselines) -> list[Reading]:
    seen = observe(np.random.default_rng(0), base, meters, missing=0.0, noise=0.0)
    out: list[Reading] = []
    for delivery in terra.morning(user, seen, 0, day):
        readings, rejected = normalise(PROVIDER.to_readings(PROVIDER.parse({}, delivery.body)))
        assert rejected == []
        out.extend(readings)
    return out


def test_signals_move_with_the_true_meters() -> None:
    base = DeviceBaselines.sample(np.random.default_rng(1), 1)
    rng = np.random.default_rng(2)
    low = observe(rng, base, _meters(0.2, 0.2, 0.2), noise=0.0)
    high = observe(rng, base, _meters(0.8, 0.8, 0.8), noise=0.0)
    assert high.rmssd_ms[0] > low.rmssd_ms[0] and high.resting_hr_bpm[0] < low.resting_hr_bpm[0]
    assert high.sleep_score[0] > low.sleep_score[0] and high.asleep_s[0] > low.asleep_s[0]
    assert high.deep_s[0] / high.asleep_s[0] > low.deep_s[0] / low.asleep_s[0]
    assert high.stress[0] < low.stress[0]


def test_missing_days_are_drawn_at_the_given_rate() -> None:
    base = DeviceBaselines.sample(np.random.default_rng(1), 4000)
    seen = observe(np.random.default_rng(3), base, _meters(0.5, 0.5, 0.5, 4000), missing=0.25)
    assert seen.has_sleep.mean() == pytest.approx(0.75, abs=0.03)
    assert seen.has_daily.mean() == pytest.approx(0.75, abs=0.03)


def test_the_bridge_reads_every_signal_of_a_morning() -> None:
    user = uuid.uuid4()
    base = DeviceBaselines.sample(np.random.default_rng(1), 1)
    kinds = {r.kind for r in _readings(user, _meters(0.5, 0.5, 0.5), DAY, base)}
    assert kinds >= {
        SignalKind.HRV_RMSSD,
        SignalKind.RESTING_HEART_RATE,
        SignalKind.SLEEP_DURATION,
        SignalKind.SLEEP_SCORE,
        SignalKind.DEEP_SLEEP_PERCENT,
        SignalKind.STRESS_SCORE,
        SignalKind.STEPS,
    }


@pytest.mark.parametrize(("today", "above"), [(0.85, True), (0.15, False)])
def test_the_engine_reads_a_day_against_four_ordinary_weeks(today: float, above: bool) -> None:
    user = uuid.uuid4()
    base = DeviceBaselines.sample(np.random.default_rng(1), 1)
    readings: list[Reading] = []
    ordinary = np.random.default_rng(4)
    for day in range(28):
        wobble = ordinary.normal(0.0, 0.05, 3)
        readings += _readings(user, _meters(*(0.5 + wobble)), DAY + timedelta(days=day), base)
    morning = DAY + timedelta(days=28)
    readings += _readings(user, _meters(today, today, today), morning, base)
    report = estimate_meters(readings, morning + timedelta(hours=8), UTC)
    for meter in (Meter.VITALITY, Meter.COGNITION):
        value = report[meter].value
        assert value is not None and (value > 0.6 if above else value < 0.4), (meter, value)
    # Serenity also reads the 7-day HRV trend, which one day moves only a little: the direction must hold.
    serenity = report[Meter.SERENITY].value
    assert serenity is not None and (serenity > 0.5 if above else serenity < 0.5)
    assert report[Meter.PROGRESS].value is None and report[Meter.CONNECTION].value is None


def _weeks_of_tasks(progress: float, n: int, *, missing: float = 0.0, days: int = 21) -> TaskLists:
    tasks = TaskLists.empty(np.random.default_rng(5), n)
    meters = np.full((n, 5), 0.5)
    meters[:, METER_INDEX[Meter.PROGRESS]] = progress
    rng = np.random.default_rng(6)
    for day in range(days):
        tasks.day(rng, day, meters, missing=missing)
    return tasks


def test_tasks_are_ticked_off_faster_with_more_progress() -> None:
    low, high = _weeks_of_tasks(0.2, 200), _weeks_of_tasks(0.8, 200)
    assert np.array_equal(low.due >= 0, high.due >= 0)  # the same tasks came in: only the ticks differ
    ticked = [float((t.done >= 0).sum() / (t.due >= 0).sum()) for t in (low, high)]
    assert ticked[1] > ticked[0] + 0.2
    assert (low.due[low.due >= 0] > low.created[low.due >= 0]).all()  # nothing is due the day it comes in
    assert ((high.done < 0) | (high.done > high.created)).all()  # nor ticked off that day
    untouched = _weeks_of_tasks(0.8, 200, missing=1.0)
    assert (untouched.done < 0).all()


@pytest.mark.parametrize(("progress", "above"), [(0.85, True), (0.15, False)])
def test_the_engine_reads_progress_from_the_task_list(progress: float, above: bool) -> None:
    """The inverse, through the meters job's own computation: a person whose progress was high these three
    weeks reads above neutral, a low one below."""
    tasks = _weeks_of_tasks(progress, 1)
    now = DAY + timedelta(days=20, hours=8)
    inputs = context_inputs(now, ZoneInfo("UTC"), None, task_records(tasks, 0, DAY))
    assert inputs.task_completion_rate is not None and inputs.calendar_density is None
    value = estimate_meters(inputs.readings(), now, UTC)[Meter.PROGRESS].value
    assert value is not None and (value > 0.5 if above else value < 0.5), value

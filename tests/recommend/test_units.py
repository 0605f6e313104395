"""Pure parts of the recommend path: circuit breaker, sampling, slots."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from app.recommend.breaker import CircuitBreaker, CircuitState
from app.recommend.sampling import sample, sampling_distribution
from app.recommend.slots import LocalSlot, local_slot, window_start
from domain import ACTIONS, Action, Slot


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _state(breaker: CircuitBreaker) -> CircuitState:
    # A call, not the property: mypy would otherwise narrow the property across the state changes.
    return breaker.state


def test_breaker_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=10.0, clock=FakeClock())
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # resets the count: failures must be consecutive
    for _ in range(2):
        breaker.record_failure()
    assert _state(breaker) is CircuitState.CLOSED
    breaker.record_failure()
    assert _state(breaker) is CircuitState.OPEN
    assert not breaker.allow()


def test_breaker_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=10.0, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert _state(breaker) is CircuitState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else while it runs
    breaker.record_failure()
    assert _state(breaker) is CircuitState.OPEN
    clock.now += 10.0
    assert breaker.allow()
    breaker.record_success()
    assert _state(breaker) is CircuitState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_breaker_release_hands_the_probe_to_the_next_caller() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.release()  # the probe was cancelled
    assert breaker.allow()


def test_sampling_excludes_and_tempers() -> None:
    probs = np.array([0.4, 0.3, 0.1, 0.1, 0.05, 0.05, 0.0, 0.0, 0.0, 0.0])
    same = sampling_distribution(probs, [], 1.0)
    assert same == pytest.approx(probs)
    excluded = sampling_distribution(probs, [Action.DEEP_WORK], 1.0)
    assert excluded[0] == 0.0
    assert excluded.sum() == pytest.approx(1.0)
    assert excluded[1] == pytest.approx(0.5)
    sharp = sampling_distribution(probs, [], 0.5)  # p**2, renormalised
    assert sharp[0] == pytest.approx(0.16 / 0.275)
    flat = sampling_distribution(probs, [], 5.0)
    assert flat[0] < probs[0] and flat[5] > probs[5]


def test_sampling_floor_bounds_every_allowed_propensity() -> None:
    probs = np.array([0.97, 0.03] + [0.0] * 8)
    dist = sampling_distribution(probs, [Action.ADMIN_WORK], 1.0, floor=0.1)
    assert dist[1] == 0.0  # an excluded action stays impossible
    assert dist.sum() == pytest.approx(1.0)
    assert dist[2:] == pytest.approx([0.1 / 9] * 8)
    assert dist[0] == pytest.approx(0.9 + 0.1 / 9)
    with pytest.raises(ValueError, match="floor"):
        sampling_distribution(probs, [], 1.0, floor=1.0)


def test_sampling_with_only_zero_probability_actions_left_is_uniform_over_them() -> None:
    probs = np.array([1.0] + [0.0] * 9)
    dist = sampling_distribution(probs, [Action.DEEP_WORK, Action.ADMIN_WORK], 1.0)
    assert dist[:2].tolist() == [0.0, 0.0]
    assert dist[2:] == pytest.approx([1 / 8] * 8)


def test_sample_follows_the_distribution() -> None:
    rng = np.random.default_rng(7)
    probs = sampling_distribution(np.full(len(ACTIONS), 0.1), list(ACTIONS[2:]), 1.0)
    draws = [sample(probs, rng) for _ in range(2000)]
    assert set(draws) == {0, 1}
    assert 0.45 < draws.count(0) / len(draws) < 0.55


def test_night_after_midnight_belongs_to_the_previous_day() -> None:
    tz = ZoneInfo("Europe/Berlin")
    assert local_slot(datetime(2026, 11, 24, 23, 30, tzinfo=UTC), tz) == LocalSlot(
        date(2026, 11, 24), Slot.NIGHT
    )
    assert local_slot(datetime(2026, 11, 25, 3, 59, tzinfo=UTC), tz) == LocalSlot(
        date(2026, 11, 24), Slot.NIGHT
    )
    assert local_slot(datetime(2026, 11, 25, 4, 0, tzinfo=UTC), tz) == LocalSlot(
        date(2026, 11, 25), Slot.MORNING
    )


def test_window_start_is_05_00_local_across_a_dst_change() -> None:
    tz = ZoneInfo("Europe/Berlin")
    # Summer time ended on 2026-10-25; a 3-day window ending 2026-10-26 starts 2026-10-24 05:00 CEST.
    current = local_slot(datetime(2026, 10, 26, 12, 0, tzinfo=UTC), tz)
    start = window_start(current, 3, tz)
    assert start.astimezone(UTC) == datetime(2026, 10, 24, 3, 0, tzinfo=UTC)
    assert window_start(current, 1, tz).astimezone(UTC) == datetime(2026, 10, 26, 4, 0, tzinfo=UTC)

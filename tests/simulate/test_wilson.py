"""The calendar accuracy interval: a perfect or a zero score must sit inside its own interval."""

import math

import pytest

from app.simulate.calendar import wilson_interval


@pytest.mark.parametrize("n", [1, 3, 7, 10, 63, 100, 1234, 99991])
def test_the_observed_rate_is_inside_its_interval_at_the_ends_and_between(n: int) -> None:
    for successes in {0, 1, n // 3, n // 2, n - 1, n}:
        low, high = wilson_interval(successes, n)
        rate = successes / n
        assert 0.0 <= low <= rate <= high <= 1.0, (successes, n, low, high)


def test_known_values_and_shrinking_width() -> None:
    # 8 of 10: the textbook Wilson interval is about [0.490, 0.943].
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(800, 1000)[1] - wilson_interval(800, 1000)[0] < high - low
    # A perfect score is not certainty: the lower bound stays below 1 and rises with n.
    assert wilson_interval(10, 10)[0] < wilson_interval(100, 100)[0] < 1.0


def test_no_events_gives_no_interval() -> None:
    assert all(math.isnan(x) for x in wilson_interval(0, 0))

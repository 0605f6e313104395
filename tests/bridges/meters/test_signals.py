from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bridges.meters import (
    RawReading,
    Reading,
    ReadingRejected,
    SignalKind,
    Unit,
    normalise,
    sleep_stage_readings,
)
from bridges.meters.signals import SIGNAL_SPECS
from tests.bridges.meters.helpers import NOW


@pytest.mark.parametrize(
    ("kind", "value", "unit", "expected"),
    [
        (SignalKind.SLEEP_DURATION, 7.5, Unit.HOUR, 450.0),
        (SignalKind.SLEEP_DURATION, 27_000, Unit.SECOND, 450.0),
        (SignalKind.SLEEP_DURATION, 27_000_000, Unit.MILLISECOND, 450.0),
        (SignalKind.HRV_RMSSD, 0.042, Unit.SECOND, 42.0),
        (SignalKind.STRAIN_SCORE, 10.5, Unit.SCORE_OF_21, 50.0),
        (SignalKind.STRESS_SCORE, 3, Unit.SCORE_OF_5, 60.0),
        (SignalKind.DEEP_SLEEP_PERCENT, 0.18, Unit.FRACTION, 18.0),
        (SignalKind.RESTING_HEART_RATE, 58, "count/min", 58.0),
        (SignalKind.DEADLINE_PROXIMITY, 36, Unit.HOUR, 1.5),
    ],
)
def test_values_are_converted_to_the_canonical_unit(
    kind: SignalKind, value: float, unit: Unit | str, expected: float
) -> None:
    r = Reading.create(kind, value, unit, NOW, "whoop")
    assert r.unit is SIGNAL_SPECS[kind].unit
    assert r.value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kind", "value", "unit", "code"),
    [
        # Garmin's "not enough data" sentinel must not become a calm 0.
        (SignalKind.STRESS_SCORE, -1, Unit.SCORE, "out_of_range"),
        (SignalKind.SLEEP_SCORE, 101, Unit.SCORE, "out_of_range"),
        # 0.8 h is fine, but a value in seconds sent as hours is a day and a half of sleep.
        (SignalKind.SLEEP_DURATION, 27_000, Unit.HOUR, "out_of_range"),
        (SignalKind.HRV_RMSSD, 42, Unit.BPM, "unit_mismatch"),
        (SignalKind.STEPS, 500, Unit.MINUTE, "unit_mismatch"),
        (SignalKind.HRV_RMSSD, float("nan"), Unit.MILLISECOND, "not_finite"),
        (SignalKind.HRV_RMSSD, float("inf"), Unit.MILLISECOND, "not_finite"),
        ("hrv_magic", 42, Unit.MILLISECOND, "unknown_kind"),
        (SignalKind.HRV_RMSSD, 42, "furlongs", "unknown_unit"),
        (SignalKind.STEPS, True, Unit.COUNT, "not_a_number"),
    ],
)
def test_impossible_readings_are_rejected_with_a_reason(
    kind: SignalKind | str, value: float, unit: Unit | str, code: str
) -> None:
    with pytest.raises(ReadingRejected) as info:
        Reading.create(kind, value, unit, NOW, "garmin")
    assert info.value.code == code
    assert info.value.reason


def test_naive_timestamps_and_missing_sources_are_rejected() -> None:
    with pytest.raises(ReadingRejected, match="UTC offset"):
        Reading.create(SignalKind.STEPS, 100, Unit.COUNT, datetime(2026, 6, 1, 7), "apple")
    with pytest.raises(ReadingRejected, match="source"):
        Reading.create(SignalKind.STEPS, 100, Unit.COUNT, NOW, "")


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))),
    ],
)
def test_timestamps_without_a_utc_form_are_rejected_not_an_overflow(moment: datetime) -> None:
    # A provider's year 1 or 9999 raised OverflowError in the conversion to UTC (issue 10).
    with pytest.raises(ReadingRejected) as info:
        Reading.create(SignalKind.STEPS, 100, Unit.COUNT, moment, "whoop")
    assert info.value.code == "bad_timestamp"
    readings, rejections = normalise([RawReading(SignalKind.STEPS, 100, Unit.COUNT, moment, "whoop")])
    assert readings == [] and [r.code for r in rejections] == ["bad_timestamp"]


def test_the_constructor_refuses_non_canonical_units() -> None:
    with pytest.raises(ReadingRejected) as info:
        Reading(SignalKind.SLEEP_DURATION, 7.0, Unit.HOUR, NOW, "oura")
    assert info.value.code == "not_canonical"


def test_a_batch_keeps_every_reading_accounted_for() -> None:
    raw = [
        RawReading(SignalKind.HRV_RMSSD, 45, "ms", NOW, "oura"),
        RawReading(SignalKind.STRESS_SCORE, -1, "score", NOW, "garmin"),
        RawReading(SignalKind.HRV_SDNN, 60, "ms", NOW, "apple"),
        RawReading("nope", 1, "count", NOW, "apple"),
    ]
    accepted, rejected = normalise(raw)
    assert [r.kind for r in accepted] == [SignalKind.HRV_RMSSD, SignalKind.HRV_SDNN]
    assert [(r.index, r.code) for r in rejected] == [(1, "out_of_range"), (3, "unknown_kind")]


def test_sleep_stages_give_the_deep_share_of_time_asleep() -> None:
    readings = sleep_stage_readings(
        deep=1.5, rem=1.5, light=3.0, awake=0.5, unit=Unit.HOUR, observed_at=NOW, source="whoop"
    )
    by_kind = {r.kind: r.value for r in readings}
    assert by_kind[SignalKind.SLEEP_DEEP] == pytest.approx(90.0)
    assert by_kind[SignalKind.SLEEP_AWAKE] == pytest.approx(30.0)
    # Awake time is not sleep: 1.5 / (1.5 + 1.5 + 3), not / 6.5.
    assert by_kind[SignalKind.DEEP_SLEEP_PERCENT] == pytest.approx(25.0)

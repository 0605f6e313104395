"""For arbitrary valid readings, every meter is in [0, 1] or missing, and missing means confidence 0."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bridges.meters import Reading, SignalKind, estimate_meters
from bridges.meters.signals import SIGNAL_SPECS
from domain import METERS
from tests.bridges.meters.helpers import NOW


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    kind = draw(st.sampled_from(list(SignalKind)))
    spec = SIGNAL_SPECS[kind]
    value = draw(st.floats(spec.low, spec.high, allow_nan=False, allow_infinity=False))
    # From six weeks ago to a little past "now" (clock skew and readings from the future included).
    seconds = draw(st.integers(-42 * 86400, 3600))
    source = draw(st.sampled_from(["oura", "whoop", "apple"]))
    return Reading.create(kind, value, kind.unit, NOW + timedelta(seconds=seconds), source)


@settings(max_examples=200, deadline=None)
@given(st.lists(readings(), max_size=60))
def test_every_meter_is_in_unit_interval_or_missing(batch: list[Reading]) -> None:
    report = estimate_meters(batch, NOW)
    for meter in METERS:
        estimate = report[meter]
        assert 0.0 <= estimate.confidence <= 1.0
        if estimate.value is None:
            assert estimate.confidence == 0.0 and not estimate.inputs
        else:
            assert 0.0 <= estimate.value <= 1.0
            assert estimate.inputs and all(-3.0 <= i.z <= 3.0 for i in estimate.inputs)
    complete = report.meters()
    assert (complete is None) == any(report[m].value is None for m in METERS)

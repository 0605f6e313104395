"""Health Auto Export metrics → readings.

HealthKit's HRV is **SDNN** (``heartRateVariabilitySDNN``), a different statistic from the RMSSD that WHOOP,
Oura, Garmin and Google report: it becomes ``hrv_sdnn`` and never enters an RMSSD baseline (reference §4).
Timestamps are the exporter's ``yyyy-MM-dd HH:mm:ss Z``; a point whose date does not parse is rejected with
its reason, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from bridges.apple_health.schemas import AppleHealthExport, HealthMetric, HealthPoint
from bridges.meters.signals import RawReading, SignalKind, Unit

SOURCE = "apple_health"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

# The exporter's unit strings; an unknown one makes the reading's unit unknown (rejected, with its reason).
UNITS = {
    "ms": Unit.MILLISECOND,
    "s": Unit.SECOND,
    "min": Unit.MINUTE,
    "hr": Unit.HOUR,
    "h": Unit.HOUR,
    "count/min": Unit.COUNT_PER_MINUTE,
    "bpm": Unit.BPM,
    "count": Unit.COUNT,
    "%": Unit.PERCENT,
}

QUANTITY_METRICS = {
    "heart_rate_variability": SignalKind.HRV_SDNN,
    "resting_heart_rate": SignalKind.RESTING_HEART_RATE,
    "step_count": SignalKind.STEPS,
}
SLEEP_METRIC = "sleep_analysis"


class BadDate(ValueError):
    pass


def parse_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, DATE_FORMAT)
    except ValueError as exc:
        raise BadDate(f"date {value!r} is not 'yyyy-MM-dd HH:mm:ss Z'") from exc


def readings(export: AppleHealthExport) -> tuple[list[RawReading | BadDate], list[str]]:
    """The export's readings in order (a point with an unreadable date stands as its :class:`BadDate`), and
    the names of the metrics the bridge does not read."""
    out: list[RawReading | BadDate] = []
    ignored: list[str] = []
    for metric in export.data.metrics:
        if metric.name in QUANTITY_METRICS:
            out += _quantities(metric, QUANTITY_METRICS[metric.name])
        elif metric.name == SLEEP_METRIC:
            out += _sleep(metric)
        elif metric.name not in ignored:
            ignored.append(metric.name)
    return out, ignored


def _unit(metric: HealthMetric) -> Unit | str:
    return UNITS.get(metric.units, metric.units or "?")


def _quantities(metric: HealthMetric, kind: SignalKind) -> Iterator[RawReading | BadDate]:
    unit = _unit(metric)
    for point in metric.data:
        if point.qty is None:
            continue
        try:
            yield RawReading(kind, point.qty, unit, parse_date(point.date), SOURCE)
        except BadDate as exc:
            yield exc


def _sleep(metric: HealthMetric) -> Iterator[RawReading | BadDate]:
    # Aggregated sleep, one point per night, in the metric's unit (hours by default).
    unit = _unit(metric) if metric.units else Unit.HOUR
    for point in metric.data:
        try:
            at = parse_date(point.sleepEnd or point.date)
        except BadDate as exc:
            yield exc
            continue
        yield from _night(point, unit, at)


def _night(point: HealthPoint, unit: Unit | str, at: datetime) -> Iterator[RawReading]:
    asleep = point.totalSleep if point.totalSleep is not None else point.asleep
    # HealthKit's "core" sleep is the light stage.
    for kind, value in (
        (SignalKind.SLEEP_DURATION, asleep),
        (SignalKind.SLEEP_DEEP, point.deep),
        (SignalKind.SLEEP_REM, point.rem),
        (SignalKind.SLEEP_LIGHT, point.core),
        (SignalKind.SLEEP_AWAKE, point.awake),
    ):
        if value is not None:
            yield RawReading(kind, value, unit, at, SOURCE)
    deep, rem, light = point.deep, point.rem, point.core
    if deep is not None and rem is not None and light is not None and deep + rem + light > 0:
        share = 100.0 * deep / (deep + rem + light)
        yield RawReading(SignalKind.DEEP_SLEEP_PERCENT, share, Unit.PERCENT, at, SOURCE)

"""Signals → personal baselines → the five meters, as a pure engine (no database, no web layer).

``Reading.create`` validates and converts what a provider mapping or an upload hands over;
``estimate_meters`` turns one user's readings into a :class:`MeterReport` (value or missing, confidence and
provenance per meter). See docs/meters.md.
"""

from bridges.meters.context import ContextInputs, ContextInputSource, NoContextInputs
from bridges.meters.engine import (
    DECAY,
    WEIGHTS,
    Input,
    InputUsed,
    MeterEstimate,
    MeterReport,
    estimate_meters,
)
from bridges.meters.signals import (
    RawReading,
    Reading,
    ReadingRejected,
    Rejection,
    SignalKind,
    Unit,
    convert,
    normalise,
    sleep_stage_readings,
)

__all__ = [
    "DECAY",
    "WEIGHTS",
    "ContextInputSource",
    "ContextInputs",
    "Input",
    "InputUsed",
    "MeterEstimate",
    "MeterReport",
    "NoContextInputs",
    "RawReading",
    "Reading",
    "ReadingRejected",
    "Rejection",
    "SignalKind",
    "Unit",
    "convert",
    "estimate_meters",
    "normalise",
    "sleep_stage_readings",
]

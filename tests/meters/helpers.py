"""Readings written straight into ``signal_readings`` (as the inbox or an upload would) and a recompute."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.config import Settings
from app.core.db import task_session
from app.meters import service
from app.models import SignalReading
from app.models.base import meter_values_of
from app.models.signals import confidences_of
from bridges.meters import SignalKind
from domain import METERS, Meter

# Noon UTC today: every test user's "now". Readings are dated relative to it.
NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Stored:
    """A stored snapshot as read back: values (None = missing), confidences, provenance."""

    id: uuid.UUID
    taken_at: datetime
    values: dict[Meter, float | None]
    confidences: dict[Meter, float | None]
    provenance: dict[str, Any]

    def value(self, meter: Meter) -> float:
        """The meter's value, which the test expects to be known."""
        value = self.values[meter]
        assert value is not None, f"{meter.value} is missing"
        return value

    def confidence(self, meter: Meter) -> float:
        confidence = self.confidences[meter]
        assert confidence is not None
        return confidence

    def inputs(self, meter: Meter) -> list[dict[str, Any]]:
        inputs: list[dict[str, Any]] = self.provenance["meters"][meter.value]["inputs"]
        return inputs


def write_readings(
    settings: Settings, user_id: uuid.UUID, rows: Iterable[tuple[SignalKind, float, datetime, str]]
) -> int:
    """Insert ``(kind, value in the kind's canonical unit, observed_at, source)`` rows; returns how many."""
    with task_session(settings.sync_database_url) as session:
        items = [
            SignalReading(
                user_id=user_id,
                source=source,
                kind=kind.value,
                value=value,
                unit=kind.unit.value,
                observed_at=at,
            )
            for kind, value, at, source in rows
        ]
        session.add_all(items)
        return len(items)


def nightly(
    kind: SignalKind, values: Sequence[float], *, last: datetime, source: str = "oura"
) -> list[tuple[SignalKind, float, datetime, str]]:
    """One reading a day, the last of ``values`` at ``last``, the others one day earlier each."""
    n = len(values)
    return [(kind, value, last - timedelta(days=n - 1 - i), source) for i, value in enumerate(values)]


def recompute(settings: Settings, user_id: uuid.UUID, now: datetime = NOW) -> Stored:
    """What the task does after freeing the queue slot: estimate at ``now`` and store the snapshot."""
    with task_session(settings.sync_database_url) as session:
        snapshot = service.recompute(session, user_id, now)
        assert snapshot is not None
        return Stored(
            snapshot.id,
            snapshot.taken_at,
            dict(zip(METERS, meter_values_of(snapshot), strict=True)),
            dict(zip(METERS, confidences_of(snapshot), strict=True)),
            snapshot.provenance or {},
        )


def row_meters(row: Any) -> dict[str, float | None]:
    """A stored row's meters by name (``None`` = missing)."""
    return {meter.value: value for meter, value in zip(METERS, meter_values_of(row), strict=True)}

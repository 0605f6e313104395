"""Builders for readings at day offsets from a fixed moment."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bridges.meters import Reading, SignalKind

NOW = datetime(2026, 6, 29, 12, 0, tzinfo=UTC)


def at(days_ago: float, hour: int = 7) -> datetime:
    """``hour``:00 UTC on the day ``days_ago`` whole days before NOW (fractional days shift the moment)."""
    base = NOW.replace(hour=hour) - timedelta(days=int(days_ago))
    return base - timedelta(days=days_ago - int(days_ago))


def reading(
    kind: SignalKind, value: float, days_ago: float = 0, source: str = "oura", hour: int = 7
) -> Reading:
    return Reading.create(kind, value, kind.unit, at(days_ago, hour), source)


def history(
    kind: SignalKind, values: Iterable[float], start_days_ago: int, source: str = "oura", hour: int = 7
) -> list[Reading]:
    """One reading a day, the first ``start_days_ago`` days before NOW, the next a day later, and so on."""
    return [reading(kind, v, start_days_ago - i, source, hour) for i, v in enumerate(values)]


def wobble(centre: float, n: int, spread: float) -> list[float]:
    """``n`` deterministic values around ``centre`` (a fixed pattern, so tests never flake)."""
    pattern = (0.0, 1.0, -1.0, 0.5, -0.5, 0.8, -0.8)
    return [centre + spread * pattern[i % len(pattern)] for i in range(n)]

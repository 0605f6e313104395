"""A circuit breaker for the primary policy backend: stop calling a server that keeps failing.

closed → (``threshold`` consecutive failures) → open → (``cooldown`` elapsed) → half-open: exactly one probe
call goes through; its success closes the circuit, its failure opens it for another cool-down. While open, and
while a probe is in flight, callers are refused at once and the fallback answers — a dead model server costs
nothing per request instead of a timeout each.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class CircuitState(enum.IntEnum):
    # Numeric values are what the Prometheus gauge exports.
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Consecutive-failure breaker. Not thread-safe: used from the event loop only (no awaits inside)."""

    def __init__(
        self, threshold: int, cooldown_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            return CircuitState.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """May a call go to the primary now? In half-open, only the first caller (the probe) gets ``True``."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._probe_in_flight:
            self._state = CircuitState.HALF_OPEN
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._probe_in_flight = False
        if self._state is CircuitState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._failures >= self.threshold:
            self._open()

    def release(self) -> None:
        """The call was abandoned (cancelled) without an outcome: let the next caller probe instead."""
        self._probe_in_flight = False

    def _open(self) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._failures = 0

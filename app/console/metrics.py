"""Prometheus metrics of the console, in the app's own registry (``app.state.metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # Failures climbing without successes is someone guessing tokens (the per-IP rate limit also applies).
        self.sign_ins = Counter(
            "rhythm_console_sign_ins",
            "Console sign-in attempts, by kind of session (user, ops, none) and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )

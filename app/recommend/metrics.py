"""Prometheus metrics of the recommend path, registered in the app's own registry (``app.state.metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Local inference is milliseconds, a vLLM round trip tens of milliseconds, a timeout seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PolicyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.recommendations = Counter(
            "rhythm_recommendations",
            "Recommendations served, by the backend that answered.",
            ["backend"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "rhythm_policy_fallbacks",
            "Recommendations the fallback answered instead of the primary backend, by reason.",
            ["reason"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            "rhythm_policy_circuit_state",
            "Circuit breaker of the primary policy backend: 0 closed, 1 half-open, 2 open.",
            ["backend"],
            registry=registry,
        )
        self.latency = Histogram(
            "rhythm_policy_backend_duration_seconds",
            "Time a policy backend took to answer (failures included).",
            ["backend", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

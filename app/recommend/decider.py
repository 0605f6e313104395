"""How the service decides: the primary policy backend guarded by a circuit breaker, and a fallback.

(``decider``, not ``policy``: :mod:`policy` is the model package; this module only routes to its backends.)

:meth:`PolicyService.decide` never raises for a model-server problem: an error, a timeout or an open circuit
makes the exact-Bayes fallback answer (``backend: "fallback"``), so ``/v1/recommend`` degrades instead of
failing.
"""

from __future__ import annotations

import time

import numpy as np
import structlog

from app.core.config import PolicyBackend as BackendKind
from app.core.config import Settings
from app.recommend.backends.base import BackendError, PolicyBackend, PolicyDecision, PolicyInput
from app.recommend.backends.embedded import EmbeddedBackend
from app.recommend.backends.fallback import FallbackBackend
from app.recommend.backends.vllm import VLLMBackend
from app.recommend.breaker import CircuitBreaker
from app.recommend.metrics import PolicyMetrics

log = structlog.get_logger(__name__)


class PolicyService:
    """Routes each decision to the primary backend while its circuit allows, else to the fallback."""

    def __init__(
        self,
        primary: PolicyBackend,
        metrics: PolicyMetrics,
        *,
        fallback: PolicyBackend | None = None,
        breaker: CircuitBreaker | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback or FallbackBackend()
        self.breaker = breaker or CircuitBreaker(threshold=3, cooldown_s=30.0)
        self.metrics = metrics
        # Exploration: the action is sampled from the (tempered) distribution with this generator.
        self.rng = rng or np.random.default_rng()
        self._publish_state()

    @property
    def supports_adapters(self) -> bool:
        return self.primary.supports_adapters

    async def decide(self, inp: PolicyInput) -> PolicyDecision:
        """The primary's decision, or the fallback's when the primary fails, times out or its circuit is
        open."""
        if self.primary.name == self.fallback.name:  # RHYTHM_POLICY_BACKEND=fallback: nothing to guard
            return await self._timed(self.fallback, inp)
        if not self.breaker.allow():
            self._publish_state()
            self.metrics.fallbacks.labels("circuit_open").inc()
            return await self._timed(self.fallback, inp)
        try:
            decision = await self._timed(self.primary, inp)
        except Exception as exc:
            self.breaker.record_failure()
            self._publish_state()
            self.metrics.fallbacks.labels("error").inc()
            if isinstance(exc, BackendError):
                log.warning("policy_backend_failed", backend=self.primary.name, error=str(exc))
            else:  # not an expected failure mode: keep the traceback, still answer the user
                log.exception("policy_backend_crashed", backend=self.primary.name)
            return await self._timed(self.fallback, inp)
        except BaseException:
            # Cancelled (the client went away): no verdict on the server's health.
            self.breaker.release()
            raise
        self.breaker.record_success()
        self._publish_state()
        return decision

    async def _timed(self, backend: PolicyBackend, inp: PolicyInput) -> PolicyDecision:
        started = time.perf_counter()
        outcome = "error"
        try:
            decision = await backend.decide(inp)
            outcome = "ok"
            return decision
        finally:
            self.metrics.latency.labels(backend.name, outcome).observe(time.perf_counter() - started)

    def _publish_state(self) -> None:
        self.metrics.circuit_state.labels(self.primary.name).set(int(self.breaker.state))

    async def ready(self) -> bool:
        """Readiness: the primary answers its health check (the fallback alone is degraded, not ready)."""
        ok = await self.primary.ready()
        self._publish_state()
        return ok

    async def aclose(self) -> None:
        await self.primary.aclose()
        if self.fallback is not self.primary:
            await self.fallback.aclose()


async def build_primary(settings: Settings) -> PolicyBackend:
    """The backend ``RHYTHM_POLICY_BACKEND`` names, ready to use (the local model is loaded here)."""
    if settings.policy_backend is BackendKind.VLLM:
        return VLLMBackend.from_settings(settings)
    if settings.policy_backend is BackendKind.FALLBACK:
        return FallbackBackend()
    return await EmbeddedBackend.load(
        settings.model_dir, adapter_cache_size=settings.local_adapter_cache_size
    )


def breaker_from_settings(settings: Settings) -> CircuitBreaker:
    return CircuitBreaker(
        threshold=settings.policy_failure_threshold, cooldown_s=settings.policy_cooldown.total_seconds()
    )

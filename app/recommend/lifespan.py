"""Start and stop the policy with the app: backend, breaker, metrics, readiness check."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.core.config import Settings
from app.recommend.decider import PolicyService, breaker_from_settings, build_primary
from app.recommend.metrics import PolicyMetrics


@asynccontextmanager
async def policy_lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[PolicyService]:
    """Build ``app.state.policy`` and register the ``policy`` readiness check.

    A backend object already placed in ``app.state.policy_backend`` before startup is used as the primary
    instead of the one ``RHYTHM_POLICY_BACKEND`` names (benchmarks plug in an instant backend this way).
    """
    # One set of collectors per app: the lifespan may run more than once on the same app object.
    metrics = getattr(app.state, "policy_metrics", None)
    if metrics is None:
        metrics = app.state.policy_metrics = PolicyMetrics(app.state.metrics.registry)
    primary = getattr(app.state, "policy_backend", None) or await build_primary(settings)
    service = PolicyService(primary, metrics, breaker=breaker_from_settings(settings))
    app.state.policy = service
    app.state.readiness_checks["policy"] = service.ready
    # Startup loaded hundreds of thousands of long-lived objects (torch, transformers, the model). Freezing
    # them keeps the cyclic GC from traversing them again in every full collection, pauses that showed up as
    # tail latency: `rhythm bench api`, instant backend, 8 clients: p99 250-290 ms -> 80-110 ms, server CPU
    # per request -10 %. Unfrozen at shutdown so a process that builds many apps (tests) can free them.
    gc.freeze()
    try:
        yield service
    finally:
        gc.unfreeze()
        await service.aclose()

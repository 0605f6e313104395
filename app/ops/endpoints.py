"""Operational endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.core.auth import SettingsDep
from app.core.errors import AppError, ErrorResponse
from app.core.middleware import Metrics
from app.models import ProcessKind
from app.ops.checks import process_liveness
from app.ops.schemas import HealthPublic, ProcessLivenessPublic, ReadinessPublic

log = structlog.get_logger(__name__)

router = APIRouter(tags=["operations"])

ReadinessCheck = Callable[[], Awaitable[bool]]


# Uptime monitors and load balancers often probe with HEAD; FastAPI routes a GET route's HEAD to 405.
@router.get("/healthz", response_model=HealthPublic)
@router.head("/healthz", include_in_schema=False)
async def healthz() -> HealthPublic:
    """The process is alive (no dependency is contacted)."""
    return HealthPublic(status="ok")


async def _run_check(name: str, check: ReadinessCheck, limit_s: float) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), limit_s))
    except Exception as exc:  # a failing dependency is an answer ("not ready"), not an error of this endpoint
        log.warning("readiness_check_failed", check=name, error=repr(exc))
        return False


@router.get("/readyz", response_model=ReadinessPublic, responses={503: {"model": ErrorResponse}})
@router.head("/readyz", include_in_schema=False)
async def readyz(request: Request, settings: SettingsDep) -> ReadinessPublic:
    """Ready to serve: database, broker and every registered check (e.g. the policy) answer, and a Celery
    worker is alive.

    ``worker`` and ``beat`` report the age of the newest heartbeat of each (stale after
    ``RHYTHM_HEARTBEAT_STALE_AFTER``). A dead worker fails readiness (503, ``failed`` names ``worker``):
    webhooks and jobs would pile up unprocessed (``RHYTHM_READINESS_REQUIRES_WORKER=false`` turns that off).
    A dead beat only degrades it (200, ``status: degraded``): requests are served, housekeeping is late.
    """
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    timeout = settings.readiness_timeout.total_seconds()
    names = list(checks)
    stale_after = settings.heartbeat_stale_after
    worker, beat, *results = await asyncio.gather(
        process_liveness(request.app.state.db, ProcessKind.WORKER, stale_after, timeout),
        process_liveness(request.app.state.db, ProcessKind.BEAT, stale_after, timeout),
        *(_run_check(name, checks[name], timeout) for name in names),
    )
    assert isinstance(worker, ProcessLivenessPublic) and isinstance(beat, ProcessLivenessPublic)
    outcome = {name: bool(ok) for name, ok in zip(names, results, strict=True)}
    failed = sorted(name for name, ok in outcome.items() if not ok)
    if settings.readiness_requires_worker and not worker.alive:
        failed.append("worker")
    if failed:
        raise AppError(
            503,
            f"Not ready: {', '.join(failed)}",
            code="not_ready",
            details={
                "checks": outcome,
                "failed": failed,
                "worker": worker.model_dump(mode="json"),
                "beat": beat.model_dump(mode="json"),
            },
        )
    return ReadinessPublic(
        status="ok" if beat.alive else "degraded", checks=outcome, worker=worker, beat=beat
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)

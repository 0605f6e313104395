"""Operational endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from app.core.auth import SettingsDep
from app.core.errors import AppError, ErrorResponse
from app.core.middleware import Metrics

log = structlog.get_logger(__name__)

router = APIRouter(tags=["operations"])

ReadinessCheck = Callable[[], Awaitable[bool]]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, bool]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (no dependency is contacted)."""
    return Health(status="ok")


async def _run_check(name: str, check: ReadinessCheck, limit_s: float) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), limit_s))
    except Exception as exc:  # a failing dependency is an answer ("not ready"), not an error of this endpoint
        log.warning("readiness_check_failed", check=name, error=repr(exc))
        return False


@router.get("/readyz", response_model=Readiness, responses={503: {"model": ErrorResponse}})
async def readyz(request: Request, settings: SettingsDep) -> Readiness:
    """Database, broker and every registered check (e.g. the policy) answer; 503 names the failures."""
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    timeout = settings.readiness_timeout.total_seconds()
    names = list(checks)
    results = await asyncio.gather(*(_run_check(name, checks[name], timeout) for name in names))
    outcome = dict(zip(names, results, strict=True))
    if not all(results):
        failed = sorted(name for name, ok in outcome.items() if not ok)
        raise AppError(
            503,
            f"Not ready: {', '.join(failed)}",
            code="not_ready",
            details={"checks": outcome, "failed": failed},
        )
    return Readiness(status="ok", checks=outcome)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)

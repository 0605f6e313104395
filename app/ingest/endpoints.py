"""``POST /v1/ingest/apple-health`` and ``POST /v1/ingest/signals``: readings the phone uploads."""

from __future__ import annotations

from fastapi import APIRouter

from app.core.auth import CurrentUser, SettingsDep
from app.core.db import SessionDep
from app.core.errors import ErrorResponse
from app.ingest import service
from app.ingest.schemas import AppleHealthExport, IngestPublic, SignalBatchCreate
from app.models.base import utcnow

router = APIRouter(
    prefix="/v1/ingest",
    tags=["ingest"],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        413: {"model": ErrorResponse, "description": "Body over `RHYTHM_MAX_BODY_BYTES`."},
        422: {"model": ErrorResponse},
    },
)


@router.post("/apple-health", response_model=IngestPublic)
async def upload_apple_health(
    session: SessionDep, user: CurrentUser, settings: SettingsDep, data: AppleHealthExport
) -> IngestPublic:
    """Store the calling user's Apple Health readings from a Health Auto Export "REST API" automation (JSON).

    Read: ``heart_rate_variability`` (HealthKit's SDNN, kept apart from RMSSD), ``resting_heart_rate``,
    ``step_count`` and aggregated ``sleep_analysis``; other metrics are listed in ``ignored_metrics``.
    Readings that cannot be right are skipped and listed in ``rejected`` with their reason. Uploading the same
    export again writes nothing.
    """
    return await service.ingest_apple_health(session, settings, user, data, utcnow())


@router.post("/signals", response_model=IngestPublic)
async def upload_signals(
    session: SessionDep, user: CurrentUser, settings: SettingsDep, data: SignalBatchCreate
) -> IngestPublic:
    """Store readings the mobile app measured for the calling user, of any signal kind (including on-device
    counts such as ``messages_sent``). All or nothing: one invalid reading is a 422 naming each, and nothing
    is stored. Sending the same readings again writes nothing."""
    return await service.ingest_signals(session, settings, user, data, utcnow())

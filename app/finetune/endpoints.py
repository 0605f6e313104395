"""``/v1/ops/finetune-jobs`` and ``/v1/ops/users/{user_id}/adapter(s)``: operators trigger, watch and roll
back the weekly per-user fine-tunes (admin token only)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from app.core.auth import AdminAuth, SettingsDep
from app.core.db import SessionDep
from app.core.errors import ErrorResponse
from app.core.idempotency import REPLAY_HEADER, IdempotencyKeyHeader
from app.finetune import ops
from app.finetune.schemas import (
    AdapterRollbackPublic,
    FinetuneJobCreate,
    FinetuneJobPage,
    FinetuneJobPublic,
    FinetuneJobsQueuedPublic,
    UserAdaptersPublic,
)
from app.models import FinetuneStatus

router = APIRouter(prefix="/v1/ops", tags=["operations"])

_ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No or an invalid token."},
    403: {"model": ErrorResponse, "description": "A user token: these routes need the admin token."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "Not found."}}


@router.post(
    "/finetune-jobs",
    status_code=202,
    response_model=FinetuneJobsQueuedPublic,
    responses={**_ADMIN_ONLY, **_NOT_FOUND},
)
async def queue_finetune_jobs(
    session: SessionDep, settings: SettingsDep, _admin: AdminAuth, data: FinetuneJobCreate
) -> FinetuneJobsQueuedPublic:
    """Queue this ISO week's fine-tune of one user (``{"user_id"}``) or of every user with enough answers
    (``{"all_eligible": true}``). One job per user and week: an existing job is returned as it is (a failed
    one is queued again). Jobs are sent to the ``finetune`` workers after the commit; eligibility is checked
    when a job runs (too little history → ``skipped`` with the reason)."""
    return await ops.queue_jobs(session, settings, data)


@router.get("/finetune-jobs", response_model=FinetuneJobPage, responses=_ADMIN_ONLY)
async def list_finetune_jobs(
    session: SessionDep,
    _admin: AdminAuth,
    status: Annotated[FinetuneStatus | None, Query(description="Only jobs in this state.")] = None,
    user_id: Annotated[uuid.UUID | None, Query(description="Only this user's jobs.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=ops.CURSOR_PATTERN, description="`next_cursor` of the previous page.")
    ] = None,
) -> FinetuneJobPage:
    """Fine-tune jobs, newest first, on a stable keyset cursor."""
    return await ops.list_jobs(session, status=status, user_id=user_id, limit=limit, cursor=cursor)


@router.get(
    "/finetune-jobs/{job_id}", response_model=FinetuneJobPublic, responses={**_ADMIN_ONLY, **_NOT_FOUND}
)
async def get_finetune_job(session: SessionDep, _admin: AdminAuth, job_id: uuid.UUID) -> FinetuneJobPublic:
    """One job: status, attempts, lease, adapter, training metrics, the gate's estimates and decision,
    the reason it was skipped or held back, the last error."""
    return await ops.get_job(session, job_id)


@router.get(
    "/users/{user_id}/adapters", response_model=UserAdaptersPublic, responses={**_ADMIN_ONLY, **_NOT_FOUND}
)
async def list_user_adapters(
    session: SessionDep, settings: SettingsDep, _admin: AdminAuth, user_id: uuid.UUID
) -> UserAdaptersPublic:
    """Every adapter of the user, newest first, and the one that serves them now (``active``; null when the
    user gets the base model, e.g. after the base model changed)."""
    return await ops.user_adapters(session, settings, user_id)


@router.post(
    "/users/{user_id}/adapter/rollback",
    response_model=AdapterRollbackPublic,
    responses={
        **_ADMIN_ONLY,
        **_NOT_FOUND,
        409: {"model": ErrorResponse, "description": "The user has no active adapter."},
        503: {"model": ErrorResponse, "description": "vLLM did not load the restored adapter."},
    },
)
async def rollback_user_adapter(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _admin: AdminAuth,
    user_id: uuid.UUID,
    idempotency_key: IdempotencyKeyHeader = None,
) -> AdapterRollbackPublic | JSONResponse:
    """Retire the user's active adapter and restore the one it replaced (or the base model if none).

    Each call goes one version further back. With an ``Idempotency-Key``, a retry gets the first answer again
    (header ``Idempotent-Replayed: true``) and rolls nothing further back."""
    if idempotency_key is None:
        return await ops.rollback(session, settings, user_id)
    stored = await ops.rollback_once(
        session, settings, user_id, key=idempotency_key, method=request.method, path=request.url.path
    )
    headers = {REPLAY_HEADER: "true"} if stored.replayed else None
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)

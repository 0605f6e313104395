"""The ops API's services: queue jobs, list them, show a user's adapters, roll an adapter back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import AppError, NotFoundError
from app.core.idempotency import StoredAnswer, run_idempotent
from app.finetune import deploy, service
from app.finetune.repository import FinetuneRepository, JobStore
from app.finetune.schemas import (
    AdapterPublic,
    AdapterRollbackPublic,
    FinetuneJobCreate,
    FinetuneJobPage,
    FinetuneJobPublic,
    FinetuneJobsQueuedPublic,
    UserAdaptersPublic,
)
from app.models import Adapter, AdapterStatus, FinetuneJob, FinetuneStatus
from app.models.base import utcnow
from policy.paths import base_model_version

CURSOR_PATTERN = r"^[0-9]{1,17}_[0-9a-f]{32}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


async def queue_jobs(
    session: AsyncSession, settings: Settings, data: FinetuneJobCreate
) -> FinetuneJobsQueuedPublic:
    """This week's job of one user, or of every eligible user; sent to the workers after the commit."""
    repo = FinetuneRepository(session)
    if data.user_id is not None and not await repo.user_exists(data.user_id):
        raise NotFoundError("User not found")
    now = utcnow()

    def create(store_session: Session) -> list[uuid.UUID]:
        if data.user_id is not None:
            return [service.request_job(store_session, settings, data.user_id, now).id]
        users = JobStore(store_session).eligible_users(None, settings.finetune_min_answered)
        return [service.request_job(store_session, settings, user_id, now).id for user_id in users]

    return FinetuneJobsQueuedPublic(job_ids=await session.run_sync(create))


def _encode_cursor(job: FinetuneJob) -> str:
    return f"{(job.created_at - _EPOCH) // _MICROSECOND}_{job.id.hex}"


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    micros, _, job_id = cursor.partition("_")
    try:
        return _EPOCH + int(micros) * _MICROSECOND, uuid.UUID(hex=job_id)
    except (ValueError, OverflowError) as exc:
        raise AppError(422, "Invalid cursor", code="invalid_cursor") from exc


async def list_jobs(
    session: AsyncSession,
    *,
    status: FinetuneStatus | None,
    user_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> FinetuneJobPage:
    before = _decode_cursor(cursor) if cursor else None
    jobs = await FinetuneRepository(session).list_jobs(
        status=status, user_id=user_id, limit=limit + 1, before=before
    )
    page = jobs[:limit]
    return FinetuneJobPage(
        items=[FinetuneJobPublic.model_validate(job) for job in page],
        next_cursor=_encode_cursor(page[-1]) if len(jobs) > limit else None,
    )


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> FinetuneJobPublic:
    job = await FinetuneRepository(session).get_job(job_id)
    if job is None:
        raise NotFoundError("Fine-tune job not found")
    return FinetuneJobPublic.model_validate(job)


async def user_adapters(session: AsyncSession, settings: Settings, user_id: uuid.UUID) -> UserAdaptersPublic:
    repo = FinetuneRepository(session)
    if not await repo.user_exists(user_id):
        raise NotFoundError("User not found")
    adapters = await repo.adapters(user_id)
    base = base_model_version(settings.model_dir)
    active = next((a for a in adapters if a.status is AdapterStatus.ACTIVE and a.base_model == base), None)
    return UserAdaptersPublic(
        active=AdapterPublic.model_validate(active) if active is not None else None,
        items=[AdapterPublic.model_validate(adapter) for adapter in adapters],
    )


async def rollback(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, *, expected: uuid.UUID | None = None
) -> AdapterRollbackPublic:
    """Retire the user's active adapter and reactivate the one it replaced (same base model), or leave the
    user on the base model when there is none. With vLLM the restored adapter is loaded before the pointer
    moves; the retired one is unloaded by the next reconciliation.

    ``expected``: the adapter the caller means to retire (the console's form names the one it showed). When
    it is no longer the active one, nothing changes (409 ``adapter_changed``): a form sent twice rolls back
    once."""
    repo = FinetuneRepository(session)
    if not await repo.user_exists(user_id):
        raise NotFoundError("User not found")
    adapters = await repo.adapters(user_id)
    current = next((a for a in adapters if a.status is AdapterStatus.ACTIVE), None)
    if expected is not None and (current is None or current.id != expected):
        raise AppError(409, "The adapter to retire is no longer the active one", code="adapter_changed")
    if current is None:
        raise AppError(409, "The user has no active adapter to roll back", code="no_active_adapter")
    previous: Adapter | None = next(
        (
            a
            for a in adapters
            if a.status is AdapterStatus.RETIRED
            and a.base_model == current.base_model
            and a.version < current.version
        ),
        None,
    )
    if previous is not None and deploy.uses_vllm(settings):
        try:
            await asyncio.to_thread(deploy.load, settings, previous.name, previous.uri)
        except deploy.DeployError as exc:
            raise AppError(
                503, f"The model server did not load {previous.name}", code="deploy_failed"
            ) from exc
    current.status = AdapterStatus.RETIRED
    if previous is not None:
        previous.status = AdapterStatus.ACTIVE
    await session.flush()
    return AdapterRollbackPublic(
        active=AdapterPublic.model_validate(previous) if previous is not None else None,
        retired=AdapterPublic.model_validate(current),
    )


async def rollback_once(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, *, key: str, method: str, path: str
) -> StoredAnswer:
    """:func:`rollback` under an ``Idempotency-Key``. A rollback is not idempotent by itself: an operator's
    retry after a lost answer would retire the adapter just restored and go one more version back. The key is
    stored with the user the rollback acts on rather than in the admin's scope, so it goes when that user
    does."""
    if not await FinetuneRepository(session).hold_user(user_id):
        raise NotFoundError("User not found")

    async def work() -> tuple[int, Any]:
        answer = await rollback(session, settings, user_id)
        return 200, answer.model_dump(mode="json")

    return await run_idempotent(
        session,
        scope=user_id,
        key=key,
        method=method,
        path=path,
        body=None,
        ttl=settings.idempotency_ttl,
        work=work,
    )

"""Fine-tune tasks: the job itself (queue ``finetune``) and its sweeps (queue ``default``).

``run_finetune_job`` takes the job id; the database holds the state and the lease (``app.finetune.service``),
so the task is safe to deliver twice: a second delivery finds the job claimed or finished and returns. The
``finetune`` queue's annotation in ``app.core.tasks`` gives it early ack and long time limits: a job must
not be re-delivered by the broker's visibility timeout while it trains; a killed worker is noticed by its
expired lease instead (``requeue_stale_finetune_jobs``). Errors are retried with exponential backoff up to
the job's ``max_attempts``.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from celery import Task, shared_task
from celery.signals import worker_ready

from app.core import jobs
from app.core.config import get_settings
from app.core.db import task_session
from app.core.tasks import (
    PURGE_USER_ADAPTERS,
    RECONCILE_ADAPTERS,
    REQUEUE_STALE_FINETUNE_JOBS,
    RUN_FINETUNE_JOB,
    SCHEDULE_WEEKLY_FINETUNES,
)
from app.finetune import service
from app.finetune.deploy import DeployError
from app.finetune.repository import JobStore
from app.models.base import utcnow

log = structlog.get_logger(__name__)


@shared_task(bind=True, name=RUN_FINETUNE_JOB, max_retries=None)  # type: ignore[untyped-decorator]
def run_finetune_job(self: Task, job_id: str) -> str:
    """Run one fine-tune job (claim → train → gate → deploy); idempotent per job id."""
    import torch

    settings = get_settings()
    torch.set_num_threads(settings.finetune_torch_threads)
    owner = service.worker_id()
    job_uuid = uuid.UUID(job_id)
    try:
        return service.run_job(settings, job_uuid, owner=owner).status
    except service.LeaseLost:
        log.warning("finetune_lease_lost", job_id=job_id)
        return "lease_lost"
    except Exception as exc:
        attempts = service.record_failure(settings, job_uuid, owner, exc)
        log.exception("finetune_job_error", job_id=job_id, attempts=attempts)
        if attempts is None:
            return "lease_lost"
        with task_session(settings.sync_database_url) as session:
            job = JobStore(session).get(job_uuid)
            retry = job is not None and job.status.value == "queued"
        if not retry:
            return "failed"
        base = settings.finetune_retry_backoff.total_seconds()
        raise self.retry(countdown=base * 2 ** (attempts - 1), exc=exc) from exc


@shared_task(name=SCHEDULE_WEEKLY_FINETUNES)  # type: ignore[untyped-decorator]
def schedule_weekly_finetunes() -> int:
    """Beat, weekly: one job per active user with enough answers (jobs are sent after the commit)."""
    settings = get_settings()
    with task_session(settings.sync_database_url) as session:
        ids = service.schedule_weekly(session, settings, utcnow())
    log.info("finetune_jobs_scheduled", count=len(ids))
    return len(ids)


@shared_task(name=REQUEUE_STALE_FINETUNE_JOBS)  # type: ignore[untyped-decorator]
def requeue_stale_finetune_jobs() -> int:
    """Beat, every minute: jobs whose worker died (expired lease) or whose message was lost run again."""
    settings = get_settings()
    with task_session(settings.sync_database_url) as session:
        return service.requeue_stale(session, settings, utcnow())


@shared_task(name=RECONCILE_ADAPTERS)  # type: ignore[untyped-decorator]
def reconcile_adapters() -> dict[str, int]:
    """Beat, and worker start-up: vLLM serves exactly the active adapters (it forgets them on restart)."""
    settings = get_settings()
    try:
        with task_session(settings.sync_database_url) as session:
            return service.reconcile(session, settings)
    except DeployError as exc:
        log.warning("adapter_reconcile_failed", error=str(exc))
        return {"loaded": 0, "unloaded": 0}


@shared_task(name=PURGE_USER_ADAPTERS)  # type: ignore[untyped-decorator]
def purge_user_adapters(user_id: str) -> int:
    """After a user's deletion: unload their adapters from vLLM and remove their adapter folder.
    Idempotent (nothing left → nothing done)."""
    settings = get_settings()
    return service.purge_user_adapters(settings, uuid.UUID(user_id))


@worker_ready.connect  # type: ignore[untyped-decorator]
def _reconcile_on_start(sender: Any, **_: object) -> None:
    # No transaction here and no row to wait for: sent at once through the helper every producer uses, on the
    # starting worker's own app (``sender`` is its consumer), so it reaches that worker's broker.
    jobs.send(sender.app, jobs.Job(RECONCILE_ADAPTERS))

"""A real Celery worker SIGKILLed mid-job: the expired lease is found by the sweeper, a second worker runs the
job again, and it completes exactly once (one adapter, attempt 2)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import task_session
from app.core.tasks import REQUEUE_STALE_FINETUNE_JOBS, celery_for
from app.finetune import service
from app.models import Adapter, FinetuneJob, FinetuneStatus
from app.models.base import utcnow
from tests.finetune.conftest import log_history
from tests.support import CreateUser, celery_process, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_database")]


def _job(settings: Settings, job_id: object) -> FinetuneJob:
    with task_session(settings.sync_database_url) as session:
        job = session.get(FinetuneJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


async def _wait(settings: Settings, job_id: object, done: object, seconds: float) -> FinetuneJob:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = _job(settings, job_id)
        if done(job):  # type: ignore[operator]
            return job
        await asyncio.sleep(0.5)
    raise AssertionError(f"job never reached the expected state: {_job(settings, job_id).__dict__}")


async def test_a_worker_killed_mid_job_is_replaced_and_the_job_completes_once(
    settings: Settings, create_user: CreateUser, db_session: AsyncSession, tmp_path: Path
) -> None:
    prefix = f"rhythm-test-{secrets.token_hex(6)}:"
    ft = make_settings(
        settings.database_url,
        broker_key_prefix=prefix,
        adapter_dir=tmp_path / "adapters",
        finetune_epochs=8,
        finetune_min_answered=30,
        finetune_lease=4,
        finetune_heartbeat_interval=1,
    )
    user_id, _ = await create_user()
    await log_history(db_session, user_id, days=22)
    with task_session(ft.sync_database_url) as session:
        job_id = service.request_job(session, ft, user_id, utcnow()).id  # sent after this commit

    env = {
        **os.environ,
        "RHYTHM_ENV": "test",
        "RHYTHM_DATABASE_URL": ft.database_url,
        "RHYTHM_BROKER_URL": ft.broker_url,
        "RHYTHM_BROKER_KEY_PREFIX": prefix,
        "RHYTHM_ADAPTER_DIR": str(ft.adapter_dir),
        "RHYTHM_FINETUNE_EPOCHS": "8",
        "RHYTHM_FINETUNE_MIN_ANSWERED": "30",
        "RHYTHM_FINETUNE_LEASE": "4",
        "RHYTHM_FINETUNE_HEARTBEAT_INTERVAL": "1",
        "RHYTHM_FINETUNE_TORCH_THREADS": "1",
        "RHYTHM_LOG_LEVEL": "INFO",
    }
    args = ["worker", "--pool", "solo", "-Q", "finetune,default", "--without-mingle", "--without-gossip"]
    args += ["--without-heartbeat", "-l", "INFO"]
    try:
        with celery_process([*args, "-n", f"a-{prefix}@%h"], env, tmp_path / "worker-a.log") as first:
            # Mid-job: running, and the lease has been renewed at least once (it is training).
            await _wait(
                ft,
                job_id,
                lambda j: j.status is FinetuneStatus.RUNNING and j.heartbeat_at > j.started_at,
                120,
            )
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)

        await asyncio.sleep(ft.finetune_lease.total_seconds() + 0.5)
        with celery_process([*args, "-n", f"b-{prefix}@%h"], env, tmp_path / "worker-b.log"):
            # The sweeper (beat sends it every minute) finds the expired lease and queues the job again.
            celery_for(ft).send_task(REQUEUE_STALE_FINETUNE_JOBS)
            done = await _wait(
                ft, job_id, lambda j: j.status not in (FinetuneStatus.QUEUED, FinetuneStatus.RUNNING), 240
            )
    finally:
        client = redis.Redis.from_url(ft.broker_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)

    assert done.status is FinetuneStatus.SUCCEEDED, done.error
    assert done.attempt == 2
    with task_session(ft.sync_database_url) as session:
        jobs = session.scalar(
            select(func.count()).select_from(FinetuneJob).where(FinetuneJob.user_id == user_id)
        )
        adapters = session.scalars(select(Adapter).where(Adapter.user_id == user_id)).all()
    assert jobs == 1 and len(adapters) == 1 and adapters[0].id == done.adapter_id
    folders = sorted(p.name for p in (Path(ft.adapter_dir) / f"u{user_id.hex}").iterdir())
    assert folders == [Path(adapters[0].uri).name]

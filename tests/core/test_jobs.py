"""Jobs are sent after the commit that makes their rows visible: once per commit, never after a rollback."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import jobs
from app.core.config import Settings
from app.core.db import Database, task_session
from app.core.tasks import PROCESS_WEBHOOK_EVENT
from tests.webhooks.terra import purge_broker, queued

JOB = jobs.Job(PROCESS_WEBHOOK_EVENT, ("00000000-0000-0000-0000-000000000001",))


@pytest.fixture
def isolated(settings: Settings) -> Iterator[Settings]:
    configured = settings.model_copy(update={"broker_key_prefix": f"rhythm-test-{secrets.token_hex(6)}:"})
    yield configured
    purge_broker(configured)


@pytest.fixture
async def session(isolated: Settings) -> AsyncIterator[AsyncSession]:
    database = Database(isolated.async_database_url)
    async with database.sessionmaker() as db_session:
        yield db_session
    await database.dispose()


def _tasks(settings: Settings) -> list[tuple[Any, Any]]:
    return [(m["task"], m["argsrepr"]) for m in queued(settings)]


async def test_committed_work_enqueues_exactly_once(isolated: Settings, session: AsyncSession) -> None:
    await session.execute(text("SELECT 1"))
    jobs.enqueue(session, isolated, JOB)
    assert _tasks(isolated) == [], "sent before the commit"

    await session.commit()
    assert _tasks(isolated) == [(JOB.name, f"['{JOB.args[0]}']")]

    # A later commit of the same session does not send it again.
    await session.execute(text("SELECT 1"))
    await session.commit()
    assert len(_tasks(isolated)) == 1


async def test_rolled_back_work_enqueues_nothing(isolated: Settings, session: AsyncSession) -> None:
    await session.execute(text("SELECT 1"))
    jobs.enqueue(session, isolated, JOB)
    await session.rollback()
    await session.execute(text("SELECT 1"))
    await session.commit()
    assert _tasks(isolated) == []
    assert jobs.pending_jobs(session) == []


def test_a_failed_task_transaction_enqueues_nothing(isolated: Settings) -> None:
    with pytest.raises(RuntimeError), task_session(isolated.sync_database_url) as sync:
        sync.execute(text("SELECT 1"))
        jobs.enqueue(sync, isolated, JOB)
        raise RuntimeError("the task failed after enqueuing")
    assert _tasks(isolated) == []
    with task_session(isolated.sync_database_url) as sync:
        sync.execute(text("SELECT 1"))
        jobs.enqueue(sync, isolated, JOB)
    assert len(_tasks(isolated)) == 1


async def test_a_dead_broker_does_not_undo_the_commit(settings: Settings, session: AsyncSession) -> None:
    dead = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    await session.execute(text("CREATE TEMP TABLE probe (x int)"))
    await session.execute(text("INSERT INTO probe VALUES (1)"))
    jobs.enqueue(session, dead, JOB)
    await session.commit()  # the job is lost to the broker (logged); the row stays and a sweeper re-sends
    assert (await session.execute(text("SELECT count(*) FROM probe"))).scalar_one() == 1


def test_a_worker_start_sends_the_adapter_reconciliation_through_its_own_app(isolated: Settings) -> None:
    # The one producer without a transaction (workers.finetune's worker_ready handler) sends at once, through
    # jobs.send, on the app of the worker that starts: a consumer-like sender carrying this test's app.
    from types import SimpleNamespace

    from app.core.tasks import RECONCILE_ADAPTERS, celery_for
    from workers.finetune import _reconcile_on_start

    _reconcile_on_start(SimpleNamespace(app=celery_for(isolated)))
    sent = [(m["task"], m["argsrepr"]) for m in queued(isolated, "default")]
    assert sent == [(RECONCILE_ADAPTERS, "()")]

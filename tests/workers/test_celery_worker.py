"""A real Celery worker process runs a real task against the test Postgres database.

Both brokers the service supports are exercised: Redis (production) and kombu's SQLAlchemy transport on SQLite
(the embedded broker of ``make run``). Each run uses its own queue name, so parallel test sessions never steal
each other's messages.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.models import IdempotencyKey
from tests.support import CreateUser, broker_url, celery_process
from workers.celery_app import create_celery

TASK = "rhythm.maintenance.purge_expired_idempotency_keys"


@pytest.fixture(params=["redis", "sqlite"])
def worker_broker(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        return broker_url()
    return f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"


@pytest.fixture
def worker(settings: Settings, worker_broker: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Start ``celery worker`` on a unique queue; yields (broker URL, queue) and stops it afterwards."""
    queue = f"rhythm-test-{secrets.token_hex(6)}"
    env = {
        **os.environ,
        "RHYTHM_ENV": "test",
        "RHYTHM_DATABASE_URL": settings.database_url,
        "RHYTHM_BROKER_URL": worker_broker,
    }
    args = ["worker", "--pool", "solo", "-Q", queue, "-n", f"{queue}@%h"]
    args += ["--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "INFO"]
    try:
        with celery_process(args, env, tmp_path / "worker.log"):
            yield worker_broker, queue
    finally:
        if worker_broker.startswith("redis://"):
            redis.Redis.from_url(worker_broker).delete(queue)


# kombu's SQLAlchemy transport still uses a loader option SQLAlchemy 2.1 deprecates; harmless for us.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
async def test_worker_purges_expired_idempotency_keys(
    settings: Settings, worker: tuple[str, str], create_user: CreateUser, db_session: AsyncSession
) -> None:
    broker, queue = worker
    user_id, _ = await create_user()
    now = datetime.now(UTC)

    def key(name: str, expires_at: datetime, *, admin: bool = False) -> IdempotencyKey:
        return IdempotencyKey(
            user_id=None if admin else user_id,
            key=name,
            method="POST",
            path="/v1/recommend",
            request_hash="0" * 64,
            expires_at=expires_at,
        )

    # The admin's keys (user_id NULL, POST /v1/users) expire the same way.
    db_session.add_all(
        [
            key("expired", now - timedelta(minutes=1)),
            key("fresh", now + timedelta(hours=23)),
            key("admin-expired", now - timedelta(minutes=1), admin=True),
            key("admin-fresh", now + timedelta(hours=23), admin=True),
        ]
    )
    await db_session.commit()

    celery = create_celery(settings.model_copy(update={"broker_url": broker}))
    celery.send_task(TASK, queue=queue)

    deadline = time.monotonic() + 90
    remaining: list[str] = []
    while time.monotonic() < deadline:
        db_session.expire_all()
        remaining = sorted((await db_session.scalars(select(IdempotencyKey.key))).all())
        if remaining == ["admin-fresh", "fresh"]:
            break
        await asyncio.sleep(0.5)
    assert remaining == ["admin-fresh", "fresh"], "the worker did not purge the expired key in time"

"""A message a SIGKILLed worker held is re-sent by the inbox's sweeper within minutes, not after an hour.

With late ack, Redis gives a dead worker's message back only after the transport's visibility timeout (1 h).
The sweeper asks the broker how many messages wait on ``ingest``: when none do, an event never attempted a
minute after it arrived is not behind a backlog, and it is sent again (``app.core.broker``). Real Redis, real
worker processes, a real SIGKILL.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import broker
from app.core.config import Settings
from app.core.db import Database, task_session
from app.core.tasks import PROCESS_WEBHOOK_EVENT
from app.models import SignalReading, WebhookEvent
from app.models.base import utcnow
from app.webhooks import service
from tests.support import admin_headers_for, app_client, create_user_via_api, running_app
from tests.webhooks.terra import URL, auth_event, body_of, daily_event, ingest_worker, queued, signed_headers

Client = tuple[httpx.AsyncClient, AsyncSession]


@pytest.fixture
async def client(terra: Settings, clean_database: str) -> AsyncIterator[Client]:
    database = Database(terra.async_database_url)
    async with running_app(terra) as app, app_client(app) as http, database.sessionmaker() as db:
        yield http, db
    await database.dispose()


async def post(terra: Settings, http: httpx.AsyncClient, document: dict[str, Any], trace: str) -> None:
    body = body_of(document)
    response = await http.post(URL, content=body, headers=signed_headers(terra, body, trace=trace))
    assert response.status_code == 202, response.text


async def event(db: AsyncSession, trace: str) -> WebhookEvent:
    db.expire_all()
    row = await db.scalar(select(WebhookEvent).where(WebhookEvent.external_id == f"trace:{trace}"))
    assert row is not None
    return row


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def sweep(settings: Settings, now: datetime) -> int:
    with task_session(settings.sync_database_url) as session:
        return service.requeue_stale(session, settings, now)


def waiting_for_a_lock(settings: Settings) -> int:
    """Backends of this database waiting for a row lock (a worker blocked inside its first attempt)."""
    with task_session(settings.sync_database_url) as session:
        statement = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(session.execute(statement).scalar_one())


async def test_a_killed_workers_message_is_resent_a_minute_after_arrival_and_handled_once(
    terra: Settings, client: Client, tmp_path: Path
) -> None:
    http, db = client
    user_id, _ = await create_user_via_api(http, admin_headers_for(terra))
    with ingest_worker(terra, tmp_path, "linker"):
        await post(terra, http, auth_event(user_id), "auth")

        async def linked() -> bool:
            return (await event(db, "auth")).handled_at is not None

        await wait_for(linked, "the Terra connection to be linked")

    # No worker runs: the delivery's message waits on the queue.
    await post(terra, http, daily_event(user_id), "daily")
    daily = await event(db, "daily")
    assert [m["argsrepr"] for m in queued(terra)] == [f"['{daily.id}']"]

    # Hold the event's row lock, so that the next worker takes the message and blocks inside its first
    # attempt: the moment a SIGKILL strands a message (taken from the queue, never acknowledged).
    with task_session(terra.sync_database_url) as holder:
        holder.execute(select(WebhookEvent.id).where(WebhookEvent.id == daily.id).with_for_update())
        with ingest_worker(terra, tmp_path, "doomed") as doomed:

            async def blocked() -> bool:
                return not queued(terra) and waiting_for_a_lock(terra) == 1

            await wait_for(blocked, "the worker to take the message and wait for the row")
            # An event whose first attempt is running is never re-sent, however old and however idle.
            assert sweep(terra, utcnow() + timedelta(hours=1)) == 0
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=10)
        holder.rollback()

    assert (await event(db, "daily")).attempts == 0 and not queued(terra)
    # Idle queue, but the event arrived under a minute ago: not yet called stranded.
    assert sweep(terra, utcnow()) == 0
    assert sweep(terra, utcnow() + broker.STRANDED_AFTER + timedelta(seconds=1)) == 1
    assert [m["task"] for m in queued(terra)] == [PROCESS_WEBHOOK_EVENT]

    with ingest_worker(terra, tmp_path, "rescuer"):

        async def handled() -> bool:
            return (await event(db, "daily")).handled_at is not None

        await wait_for(handled, "the re-sent event to be handled")
    handled_event = await event(db, "daily")
    assert handled_event.attempts == 1 and handled_event.error is None
    stored = await db.scalar(select(func.count()).select_from(SignalReading))
    assert stored is not None and stored > 0
    kinds = await db.scalar(
        select(func.count()).select_from(
            select(SignalReading.kind, SignalReading.observed_at).distinct().subquery()
        )
    )
    assert kinds == stored, "a reading was stored twice"


async def test_while_messages_wait_or_the_broker_cannot_say_the_sweeper_keeps_its_long_wait(
    terra: Settings, client: Client
) -> None:
    _, db = client
    now = utcnow()

    def stored(name: str, received_ago: timedelta) -> WebhookEvent:
        return WebhookEvent(
            source="terra", external_id=name, raw_body=b"{}", headers={}, received_at=now - received_ago
        )

    stranded = stored("stranded", timedelta(minutes=2))
    db.add_all([stranded, stored("fresh", timedelta(seconds=20))])
    await db.commit()

    # The broker cannot be asked: only the 15-minute rule, so nothing yet.
    unreachable = terra.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    assert sweep(unreachable, now) == 0

    # Nothing waits on the queue: the 2-minute-old event is re-sent, the 20-second-old one is not.
    assert sweep(terra, now) == 1
    assert [m["argsrepr"] for m in queued(terra)] == [f"['{stranded.id}']"]
    # Its copy now waits on the queue, so the next sweep cannot tell it from a backlog and sends nothing:
    # no stream of copies while a worker is away.
    assert sweep(terra, now + timedelta(minutes=1)) == 0
    # Past the long wait it is re-sent whatever waits (a flushed queue, a broker restarted empty).
    assert sweep(terra, now + service.STALE_AFTER - timedelta(seconds=30)) == 1
    assert [m["argsrepr"] for m in queued(terra)] == [f"['{stranded.id}']"] * 2

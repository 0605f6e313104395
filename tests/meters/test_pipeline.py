"""The whole path with real parts: signed Terra deliveries → inbox → a real Celery worker writes readings and
queues the per-user recompute → the worker stores a ``bridge`` snapshot → ``POST /v1/recommend`` without
meters uses it. And the coalescing: a burst of writes queues one recompute, none is lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import broker
from app.core.config import Settings
from app.core.db import task_session
from app.core.tasks import RECOMPUTE_METERS
from app.meters import service
from app.models import MeterRecompute, MeterSnapshot, SignalReading, WebhookEvent
from bridges.meters import SignalKind
from tests.meters.helpers import row_meters
from tests.support import admin_headers_for, app_client, create_user_via_api, running_app
from tests.webhooks.terra import URL, body_of, ingest_worker, purge_broker, queued, signed_headers
from tests.webhooks.terra import terra_settings as make_terra_settings
from tests.webhooks.terra import user as terra_user

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAYS = 14


@pytest.fixture
def terra(settings: Settings) -> Iterator[Settings]:
    configured = make_terra_settings(settings)
    yield configured
    purge_broker(configured)


def daily(
    reference_id: uuid.UUID, terra_id: str, day: datetime, *, rhr: float, hrv: float, stress: int
) -> dict[str, Any]:
    """A Terra ``daily`` event in its documented shape (heart rate summary, stress, steps)."""
    return {
        "type": "daily",
        "user": terra_user(reference_id, terra_id),
        "version": "2022-03-16",
        "data": [
            {
                "metadata": {
                    "start_time": day.isoformat(),
                    "end_time": (day + timedelta(days=1)).isoformat(),
                    "upload_type": 1,
                    "timestamp_localization": 0,
                },
                "heart_rate_data": {
                    "summary": {"resting_hr_bpm": rhr, "avg_hrv_rmssd": hrv, "avg_hrv_sdnn": None},
                    "detailed": {"hr_samples": [], "hrv_samples_rmssd": []},
                },
                "stress_data": {"avg_stress_level": stress, "max_stress_level": stress + 10, "samples": []},
                "distance_data": {"steps": 8000, "distance_meters": 6000.0},
            }
        ],
    }


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 90.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def recompute_settled(db: AsyncSession, user_id: uuid.UUID) -> bool:
    """No recompute queued, and the last one started after the last request (so it saw every reading)."""
    db.expire_all()
    row = await db.scalar(select(MeterRecompute).where(MeterRecompute.user_id == user_id))
    return (
        row is not None
        and row.queued_token is None
        and row.started_at is not None
        and row.started_at >= row.requested_at
        and row.computed_at is not None
        and row.computed_at >= row.started_at
    )


def steps_reading(user_id: uuid.UUID, value: float, at: datetime) -> SignalReading:
    kind = SignalKind.STEPS
    return SignalReading(
        user_id=user_id, source="oura", kind=kind.value, value=value, unit=kind.unit.value, observed_at=at
    )


@pytest.fixture
async def stack(
    terra: Settings, clean_database: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncSession]]:
    with ingest_worker(terra, tmp_path):
        async with running_app(terra) as app, app_client(app) as client, app.state.db.sessionmaker() as db:
            yield client, db


async def test_terra_deliveries_become_a_snapshot_that_recommend_uses(
    terra: Settings, stack: tuple[httpx.AsyncClient, AsyncSession]
) -> None:
    client, db = stack
    admin = admin_headers_for(terra)
    users: dict[str, tuple[uuid.UUID, dict[str, str]]] = {}
    for name in ("rested", "drained"):
        users[name] = await create_user_via_api(client, admin)
    for name, (user_id, _) in users.items():
        for days_ago in range(DAYS - 1, -1, -1):
            wiggle = (days_ago % 3) - 1
            last = days_ago == 0 and name == "drained"
            document = daily(
                user_id,
                f"terra-{name}-{user_id.hex[:6]}",
                TODAY - timedelta(days=days_ago),
                # The drained user's last day: low HRV, high resting HR, high stress.
                rhr=66.0 if last else 55.0 + wiggle,
                hrv=30.0 if last else 50.0 + 3 * wiggle,
                stress=85 if last else 30 + 5 * wiggle,
            )
            body = body_of(document)
            response = await client.post(URL, content=body, headers=signed_headers(terra, body))
            assert response.status_code == 202, response.text

    async def all_handled() -> bool:
        db.expire_all()
        pending = await db.scalar(select(func.count()).where(WebhookEvent.handled_at.is_(None)))
        return pending == 0

    await wait_until(all_handled, "every delivery handled")
    for user_id, _ in users.values():
        await wait_until(lambda uid=user_id: recompute_settled(db, uid), "the recompute")  # type: ignore[misc]

    snapshots: dict[str, MeterSnapshot] = {}
    for name, (user_id, _) in users.items():
        latest = await db.scalar(
            select(MeterSnapshot)
            .where(MeterSnapshot.user_id == user_id)
            .order_by(MeterSnapshot.taken_at.desc())
        )
        assert latest is not None and latest.source == "bridge"
        readings = await db.scalar(select(func.count()).where(SignalReading.user_id == user_id))
        # The latest snapshot saw every reading the deliveries wrote.
        assert latest.provenance is not None and latest.provenance["readings_considered"] == readings
        snapshots[name] = latest
    drained, rested = row_meters(snapshots["drained"]), row_meters(snapshots["rested"])
    assert drained["vitality"] is not None and rested["vitality"] is not None
    assert drained["serenity"] is not None and rested["serenity"] is not None
    assert drained["vitality"] < rested["vitality"] and drained["serenity"] < rested["serenity"]
    assert drained["progress"] is None  # no task or calendar input: missing, not 0.5

    bodies = {}
    for name, (_, headers) in users.items():
        response = await client.post("/v1/recommend", json={}, headers=headers)
        assert response.status_code == 200, response.text
        bodies[name] = response.json()
        assert bodies[name]["meters_source"] == "snapshot"
        assert bodies[name]["meters_taken_at"] is not None
        assert "progress" in bodies[name]["missing_meters"]
    assert bodies["drained"]["meters"]["vitality"] < bodies["rested"]["meters"]["vitality"]
    assert bodies["drained"]["meters"]["serenity"] < bodies["rested"]["meters"]["serenity"]


async def test_a_burst_of_writes_queues_one_recompute_and_loses_none(
    terra: Settings, clean_database: str, tmp_path: Path
) -> None:
    async with running_app(terra) as app, app_client(app) as client:
        user_id, _ = await create_user_via_api(client, admin_headers_for(terra))
    now = datetime.now(UTC)
    queued_by: list[bool] = []
    for i in range(20):
        # Each write is its own transaction, as twenty deliveries processed one after another would be.
        with task_session(terra.sync_database_url) as session:
            session.add(steps_reading(user_id, 5000.0 + i, now - timedelta(days=1, minutes=i)))
            queued_by.append(service.request_recompute(session, terra, user_id, now))
    assert queued_by.count(True) == 1 and queued_by[0] is True
    recomputes = [m for m in queued(terra) if m["task"] == RECOMPUTE_METERS]
    assert len(recomputes) == 1

    # The task frees the slot before it reads: a write landing meanwhile queues the next run, never lost.
    with task_session(terra.sync_database_url) as session:
        assert service.start(session, user_id, datetime.now(UTC))
    with task_session(terra.sync_database_url) as session:
        session.add(steps_reading(user_id, 9000.0, now - timedelta(days=2)))
        assert service.request_recompute(session, terra, user_id, datetime.now(UTC))
    assert len([m for m in queued(terra) if m["task"] == RECOMPUTE_METERS]) == 2

    with ingest_worker(terra, tmp_path):
        async with running_app(terra) as app, app.state.db.sessionmaker() as db:
            await wait_until(lambda: recompute_settled(db, user_id), "the recomputes")

            async def two_snapshots() -> bool:
                db.expire_all()
                count = await db.scalar(select(func.count()).where(MeterSnapshot.user_id == user_id))
                return bool(count == 2)

            await wait_until(two_snapshots, "both queued recomputes")
            latest = await db.scalar(
                select(MeterSnapshot)
                .where(MeterSnapshot.user_id == user_id)
                .order_by(MeterSnapshot.taken_at.desc())
            )
            assert latest is not None and latest.provenance is not None
            assert latest.provenance["readings_considered"] == 21


async def test_beat_refresh_resends_a_lost_recompute_and_refreshes_aged_meters_only(
    terra: Settings, clean_database: str
) -> None:
    async with running_app(terra) as app, app_client(app) as client:
        admin = admin_headers_for(terra)
        lost_id, _ = await create_user_via_api(client, admin)
        aged_id, _ = await create_user_via_api(client, admin)
        expired_id, _ = await create_user_via_api(client, admin)
    now = datetime.now(UTC)
    with task_session(terra.sync_database_url) as session:
        session.add(steps_reading(lost_id, 6000.0, now - timedelta(days=1)))
        session.add(steps_reading(aged_id, 6000.0, now - timedelta(days=1)))
        session.add(steps_reading(expired_id, 6000.0, now - timedelta(days=20)))
        # The lost user's slot was taken 20 minutes ago and its message never arrived.
        assert service.request_recompute(session, terra, lost_id, now - timedelta(minutes=20))
    purge_broker(terra)
    for user_id in (aged_id, expired_id):
        # Both were recomputed two hours ago; only the aged one still has an input that can count.
        with task_session(terra.sync_database_url) as session:
            service.request_recompute(session, terra, user_id, now - timedelta(hours=2))
        with task_session(terra.sync_database_url) as session:
            assert service.start(session, user_id, now - timedelta(hours=2))
            assert service.recompute(session, user_id, now - timedelta(hours=2)) is not None
    purge_broker(terra)

    with task_session(terra.sync_database_url) as session:
        assert service.refresh(session, terra, now) == (1, 1)
    sent = sorted(m["argsrepr"] for m in queued(terra) if m["task"] == RECOMPUTE_METERS)
    assert sent == sorted([repr([str(lost_id)]), repr([str(aged_id)])])
    # A second sweep right away sends nothing new: both slots are taken by queued tasks.
    with task_session(terra.sync_database_url) as session:
        assert service.refresh(session, terra, now) == (0, 0)


async def test_beat_refresh_resends_a_slot_held_a_minute_once_nothing_waits_on_the_ingest_queue(
    terra: Settings, clean_database: str
) -> None:
    """A slot whose message a killed worker took is re-sent a minute after it was queued when the ingest
    queue is idle; while a message waits there (a backlog, perhaps its own) only the 15-minute rule holds."""
    async with running_app(terra) as app, app_client(app) as client:
        user_id, _ = await create_user_via_api(client, admin_headers_for(terra))
    now = datetime.now(UTC)
    with task_session(terra.sync_database_url) as session:
        assert service.request_recompute(session, terra, user_id, now - timedelta(minutes=2))
    sent = [repr([str(user_id)])]
    assert [m["argsrepr"] for m in queued(terra)] == sent

    # Its own message still waits: a backlog for all the sweep can tell.
    with task_session(terra.sync_database_url) as session:
        assert service.refresh(session, terra, now) == (0, 0)
    purge_broker(terra)  # taken by a worker that died before starting it
    with task_session(terra.sync_database_url) as session:
        assert service.refresh(session, terra, now) == (1, 0)
    assert [m["argsrepr"] for m in queued(terra) if m["task"] == RECOMPUTE_METERS] == sent
    # The re-sent slot counts from this sweep: not re-sent again within the minute, even on an idle queue.
    purge_broker(terra)
    with task_session(terra.sync_database_url) as session:
        assert service.refresh(session, terra, now + timedelta(seconds=30)) == (0, 0)
    with task_session(terra.sync_database_url) as session:
        assert service.refresh(session, terra, now + broker.STRANDED_AFTER + timedelta(seconds=1)) == (1, 0)

"""Terra end to end: the real app accepts, a real Celery worker (all queues, this test's Redis key prefix)
processes the stored event against the test Postgres database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.models import DeviceConnection, SignalReading, WebhookEvent
from bridges.meters import Reading, SignalKind, estimate_meters
from bridges.meters.signals import Unit
from tests.support import CreateUser, admin_headers_for, app_client, create_user_via_api, running_app
from tests.webhooks.terra import (
    DAY_START,
    URL,
    auth_event,
    body_of,
    daily_event,
    ingest_worker,
    signed_headers,
    sleep_event,
    terra_settings,
    user,
)

Stack = tuple[Settings, httpx.AsyncClient, AsyncSession, CreateUser]


@pytest.fixture
def terra(settings: Settings) -> Settings:
    return terra_settings(settings)


@pytest.fixture
def worker(terra: Settings, tmp_path: Path) -> Iterator[None]:
    with ingest_worker(terra, tmp_path):
        yield


@pytest.fixture
async def stack(terra: Settings, clean_database: str, worker: None) -> AsyncIterator[Stack]:
    async with running_app(terra) as app, app_client(app) as client, app.state.db.sessionmaker() as session:

        async def create_user(timezone: str = "UTC") -> tuple[uuid.UUID, dict[str, str]]:
            return await create_user_via_api(client, admin_headers_for(terra), timezone)

        yield terra, client, session, create_user


async def post(stack: Stack, document: dict[str, Any], trace: str | None = None) -> httpx.Response:
    settings, client, _, _ = stack
    body = body_of(document)
    return await client.post(URL, content=body, headers=signed_headers(settings, body, trace=trace))


async def wait_for(db: AsyncSession, check: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        db.expire_all()
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def event_with(db: AsyncSession, external_id: str) -> WebhookEvent:
    event = await db.scalar(select(WebhookEvent).where(WebhookEvent.external_id == external_id))
    assert event is not None
    return event


async def handled(db: AsyncSession, external_id: str) -> WebhookEvent:
    async def done() -> bool:
        return (await event_with(db, external_id)).handled_at is not None

    await wait_for(db, done, f"event {external_id} to be handled")
    return await event_with(db, external_id)


async def readings(db: AsyncSession) -> list[tuple[str, str, float, str | None]]:
    rows = await db.scalars(select(SignalReading).order_by(SignalReading.kind, SignalReading.observed_at))
    # Rounded: unit conversion (seconds → minutes) gives values such as 233.333….
    return [(r.source, r.kind, round(r.value, 3), r.unit) for r in rows]


async def test_auth_event_creates_the_connection_and_data_becomes_readings(stack: Stack) -> None:
    _, _, db, create_user = stack
    user_id, _ = await create_user()

    assert (await post(stack, auth_event(user_id), trace="auth-1")).status_code == 202
    await handled(db, "trace:auth-1")
    [connection] = (await db.scalars(select(DeviceConnection))).all()
    assert (connection.user_id, connection.provider, connection.external_user_id) == (
        user_id,
        "terra",
        "terra-user-1",
    )

    assert (await post(stack, daily_event(user_id), trace="daily-1")).status_code == 202
    assert (await post(stack, sleep_event(user_id), trace="sleep-1")).status_code == 202
    await handled(db, "trace:daily-1")
    await handled(db, "trace:sleep-1")
    daily = await event_with(db, "trace:daily-1")

    assert daily.user_id == user_id and daily.attempts == 1 and daily.error is None
    # The meters' vocabulary, in its canonical units: Terra's seconds are minutes here, its stage durations
    # the stage kinds, and deep % is deep / (deep + light + REM) = 5400 / 25200.
    assert await readings(db) == [
        ("terra/oura", "deep_sleep_percent", 21.429, "%"),
        ("terra/oura", "hrv_rmssd", 48.5, "ms"),
        ("terra/oura", "resting_heart_rate", 54.0, "bpm"),
        ("terra/oura", "sleep_awake", 25.0, "min"),
        ("terra/oura", "sleep_deep", 90.0, "min"),
        ("terra/oura", "sleep_duration", 420.0, "min"),
        ("terra/oura", "sleep_light", 233.333, "min"),
        ("terra/oura", "sleep_rem", 96.667, "min"),
        ("terra/oura", "sleep_score", 84.0, "score"),
        ("terra/oura", "steps", 8412.0, "count"),
        ("terra/oura", "stress_score", 31.0, "score"),
    ]
    rows = (await db.scalars(select(SignalReading).where(SignalReading.kind == "steps"))).all()
    assert rows[0].observed_at == DAY_START and rows[0].webhook_event_id == daily.id
    # What landed is what the meters engine reads: every row is a valid canonical ``Reading``, and the
    # engine estimates Vitality and Cognition from them.
    stored = [
        Reading(SignalKind(r.kind), r.value, Unit(r.unit or ""), r.observed_at, r.source)
        for r in (await db.scalars(select(SignalReading))).all()
    ]
    estimate = estimate_meters(stored, DAY_START + timedelta(days=1, hours=8), UTC)
    used = {i.kind for meter in estimate.estimates.values() for i in meter.inputs}
    assert estimate.readings_considered == len(stored) == 11
    assert {SignalKind.SLEEP_SCORE, SignalKind.DEEP_SLEEP_PERCENT, SignalKind.STRESS_SCORE} <= used


async def test_a_reading_the_validator_rejects_is_skipped_not_stored(stack: Stack) -> None:
    _, _, db, create_user = stack
    user_id, _ = await create_user()
    document = daily_event(user_id)
    # Garmin through Terra: -1 means "not enough data", never a calm 0.
    document["data"][0]["stress_data"]["avg_stress_level"] = -1
    assert (await post(stack, document, trace="garmin-1")).status_code == 202

    event = await handled(db, "trace:garmin-1")

    assert event.error is None and event.attempts == 1
    assert [kind for _, kind, _, _ in await readings(db)] == ["hrv_rmssd", "resting_heart_rate", "steps"]


async def test_replay_is_processed_once_and_reprocessing_writes_nothing_new(stack: Stack) -> None:
    _, _, db, create_user = stack
    user_id, _ = await create_user()
    assert (await post(stack, daily_event(user_id), trace="d-1")).status_code == 202
    first_attempts = (await handled(db, "trace:d-1")).attempts
    before = await readings(db)
    ids_before = sorted(str(r.id) for r in (await db.scalars(select(SignalReading))).all())

    # The same delivery again: 200 and no new task.
    assert (await post(stack, daily_event(user_id), trace="d-1")).status_code == 200
    # Terra sending the same day's data as a new delivery: processed, but the readings exist already.
    assert (await post(stack, daily_event(user_id), trace="d-2")).status_code == 202
    second = await handled(db, "trace:d-2")

    assert (await event_with(db, "trace:d-1")).attempts == 1 == first_attempts
    assert second.attempts == 1
    assert await readings(db) == before
    assert sorted(str(r.id) for r in (await db.scalars(select(SignalReading))).all()) == ids_before
    [connection] = (await db.scalars(select(DeviceConnection))).all()
    assert connection.user_id == user_id


async def test_data_for_an_unknown_user_is_kept_with_an_error(stack: Stack) -> None:
    _, _, db, _ = stack
    assert (await post(stack, daily_event(uuid.uuid4()), trace="ghost")).status_code == 202

    async def failed() -> bool:
        return (await event_with(db, "trace:ghost")).error is not None

    await wait_for(db, failed, "the event to fail")
    event = await event_with(db, "trace:ghost")
    assert event.handled_at is None and event.attempts == 1
    assert "user we do not have" in (event.error or "")
    assert await readings(db) == []
    assert (await db.scalars(select(DeviceConnection))).all() == []


async def test_a_processing_crash_is_retried_with_the_error_visible(stack: Stack) -> None:
    settings, _, db, create_user = stack
    user_id, _ = await create_user()
    dsn = settings.sync_database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    # A real failure from the database while the task writes readings, until the trigger is dropped.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION rhythm_test_boom() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER rhythm_test_boom BEFORE INSERT ON signal_readings"
            " FOR EACH ROW EXECUTE FUNCTION rhythm_test_boom()"
        )
        try:
            assert (await post(stack, daily_event(user_id), trace="crash")).status_code == 202

            async def failed_twice() -> bool:
                return (await event_with(db, "trace:crash")).attempts >= 2

            await wait_for(db, failed_twice, "two failed attempts")
            event = await event_with(db, "trace:crash")
            assert event.handled_at is None
            assert "disk on fire" in (event.error or "")
            assert await readings(db) == []
        finally:
            # Our session's open read transaction would block the DROP (it needs a stronger lock).
            await db.rollback()
            conn.execute("DROP TRIGGER IF EXISTS rhythm_test_boom ON signal_readings")
            conn.execute("DROP FUNCTION IF EXISTS rhythm_test_boom()")

    event = await handled(db, "trace:crash")
    assert event.error is None and event.attempts >= 3
    assert len(await readings(db)) == 4  # the daily event carries no SDNN


async def test_lifecycle_events_update_the_connection(stack: Stack) -> None:
    _, _, db, create_user = stack
    user_id, _ = await create_user()
    assert (await post(stack, auth_event(user_id, "terra-old"), trace="auth")).status_code == 202
    await handled(db, "trace:auth")

    reauth = {
        "type": "user_reauth",
        "status": "success",
        "old_user": user(user_id, "terra-old"),
        "new_user": user(user_id, "terra-new"),
        "version": "2022-03-16",
    }
    assert (await post(stack, reauth, trace="reauth")).status_code == 202
    await handled(db, "trace:reauth")
    [connection] = (await db.scalars(select(DeviceConnection))).all()
    assert connection.external_user_id == "terra-new" and connection.revoked_at is None

    deauth = {
        "type": "deauth",
        "user": user(user_id, "terra-new"),
        "status": "success",
        "version": "2022-03-16",
    }
    assert (await post(stack, deauth, trace="deauth")).status_code == 202
    event = await handled(db, "trace:deauth")
    assert event.user_id == user_id
    db.expire_all()
    [connection] = (await db.scalars(select(DeviceConnection))).all()
    assert connection.user_id == user_id and connection.revoked_at is not None


async def test_an_ops_replay_of_a_failed_event_is_handled_and_replaying_again_writes_nothing(
    stack: Stack,
) -> None:
    settings, client, db, create_user = stack
    admin = admin_headers_for(settings)
    user_id, user_headers = await create_user()
    # Out of order: the day's data arrives before the auth event, with no reference id to fall back on.
    assert (await post(stack, daily_event(None), trace="early")).status_code == 202

    async def failed() -> bool:
        return (await event_with(db, "trace:early")).error is not None

    await wait_for(db, failed, "the early event to fail")
    early_id = (await event_with(db, "trace:early")).id
    assert (
        await client.post(f"/v1/ops/webhook-events/{early_id}/replay", headers=user_headers)
    ).status_code == 403
    assert (await post(stack, auth_event(user_id), trace="auth")).status_code == 202
    await handled(db, "trace:auth")

    response = await client.post(f"/v1/ops/webhook-events/{early_id}/replay", headers=admin)

    assert response.status_code == 202, response.text
    assert (response.json()["id"], response.json()["status"]) == (str(early_id), "failed")
    event = await handled(db, "trace:early")
    assert event.user_id == user_id and event.error is None and event.attempts == 2
    handled_at = event.handled_at
    before = await readings(db)
    assert [kind for _, kind, _, _ in before] == ["hrv_rmssd", "resting_heart_rate", "steps", "stress_score"]
    ids_before = sorted(str(r.id) for r in (await db.scalars(select(SignalReading))).all())
    listed = await client.get("/v1/ops/webhook-events", params={"status": "failed"}, headers=admin)
    assert listed.status_code == 200 and listed.json()["items"] == []

    # A handled event replays idempotently: the task runs, finds it handled and writes nothing.
    again = await client.post(f"/v1/ops/webhook-events/{early_id}/replay", headers=admin)
    assert again.status_code == 202 and again.json()["status"] == "handled"
    # The worker is single-threaded and FIFO: once a later event is handled, the replay has run.
    assert (await post(stack, auth_event(user_id), trace="auth-2")).status_code == 202
    await handled(db, "trace:auth-2")
    db.expire_all()
    replayed = await event_with(db, "trace:early")
    assert (replayed.attempts, replayed.handled_at) == (2, handled_at)
    assert await readings(db) == before
    assert sorted(str(r.id) for r in (await db.scalars(select(SignalReading))).all()) == ids_before

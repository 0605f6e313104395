"""The accept path of ``POST /v1/webhooks/{provider}`` with Terra: verify → store once → enqueue after commit.

No worker runs here: the processing task must wait on the ``ingest`` queue (under this test's key prefix),
exactly once per new delivery.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.tasks import PROCESS_WEBHOOK_EVENT
from app.models import WebhookEvent
from tests.support import app_client, running_app
from tests.webhooks.terra import (
    URL,
    auth_event,
    body_of,
    daily_event,
    queued,
    signed_headers,
    terra_settings,
)


@pytest.fixture
async def terra_client(terra: Settings, clean_database: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(terra) as app, app_client(app) as client:
        yield client


async def _events(db: AsyncSession) -> list[WebhookEvent]:
    db.expire_all()
    return list((await db.scalars(select(WebhookEvent))).all())


@pytest.fixture
async def db(settings: Settings, terra_client: httpx.AsyncClient) -> AsyncIterator[AsyncSession]:
    from app.core.db import Database

    database = Database(settings.async_database_url)
    async with database.sessionmaker() as session:
        yield session
    await database.dispose()


async def test_unconfigured_and_unknown_providers_are_404(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # The shared test settings have no Terra secret: the endpoint must stay closed, not open.
    body = body_of(daily_event(uuid.uuid4()))
    headers = signed_headers(terra_settings(settings), body)
    for path in (URL, "/v1/webhooks/not-a-provider"):
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"


async def test_valid_delivery_is_stored_verbatim_and_enqueued_once(
    terra: Settings, terra_client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = body_of(auth_event(uuid.uuid4()))
    headers = {**signed_headers(terra, body, trace="trace-abc"), "authorization": "Bearer not-to-be-kept"}

    response = await terra_client.post(URL, content=body, headers=headers)

    assert response.status_code == 202, response.text
    assert response.json() == {"received": True, "duplicate": False}
    [event] = await _events(db)
    assert (event.source, event.external_id) == ("terra", "trace:trace-abc")
    assert event.raw_body == body
    assert event.headers["terra-signature"] == headers["terra-signature"]
    assert "authorization" not in event.headers
    assert event.handled_at is None and event.attempts == 0
    messages = queued(terra)
    assert [(m["task"], m["argsrepr"]) for m in messages] == [(PROCESS_WEBHOOK_EVENT, f"['{event.id}']")]


async def test_replayed_delivery_is_200_stored_and_enqueued_once(
    terra: Settings, terra_client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = body_of(daily_event(uuid.uuid4()))
    headers = signed_headers(terra, body)
    first = await terra_client.post(URL, content=body, headers=headers)
    # Terra retries re-sign with a fresh timestamp; the trace id names the same delivery.
    retry_headers = {
        **signed_headers(terra, body, at=time.time() + 5),
        "x-terra-trace-id": headers["x-terra-trace-id"],
    }
    second = await terra_client.post(URL, content=body, headers=retry_headers)
    third = await terra_client.post(URL, content=body, headers=headers)

    assert first.status_code == 202
    assert (second.status_code, third.status_code) == (200, 200)
    assert second.json() == {"received": True, "duplicate": True}
    assert len(await _events(db)) == 1
    assert len(queued(terra)) == 1


@pytest.mark.parametrize(
    "tamper",
    ["forged", "wrong_secret", "expired", "future", "huge", "missing", "garbled", "body_changed"],
)
async def test_unauthentic_or_stale_deliveries_are_401_and_not_stored(
    tamper: str, terra: Settings, terra_client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = body_of(daily_event(uuid.uuid4()))
    headers = signed_headers(terra, body)
    if tamper == "forged":
        timestamp = headers["terra-signature"].split(",")[0]
        headers["terra-signature"] = f"{timestamp},v1={'0' * 64}"
    elif tamper == "wrong_secret":
        headers = signed_headers(terra_settings(terra), body)
    elif tamper == "expired":
        headers = signed_headers(terra, body, at=time.time() - 310)
    elif tamper == "future":
        headers = signed_headers(terra, body, at=time.time() + 310)
    elif tamper == "huge":
        # A timestamp too large for a float overflowed the freshness check (a 500, issue 10).
        signatures = headers["terra-signature"].split(",", 1)[1]
        headers["terra-signature"] = f"t={'9' * 400},{signatures}"
    elif tamper == "missing":
        del headers["terra-signature"]
    elif tamper == "garbled":
        headers["terra-signature"] = "t=soon,v1=xyz"
    else:
        body = body.replace(b"8412", b"9412")

    response = await terra_client.post(URL, content=body, headers=headers)

    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
    assert await _events(db) == []
    assert queued(terra) == []


async def test_a_rotated_secret_passes_if_any_signature_matches(
    terra: Settings, terra_client: httpx.AsyncClient
) -> None:
    body = body_of(daily_event(uuid.uuid4()))
    headers = signed_headers(terra, body)
    timestamp, good = headers["terra-signature"].split(",")
    headers["terra-signature"] = f"{timestamp},v1={'f' * 64},{good}"
    assert (await terra_client.post(URL, content=body, headers=headers)).status_code == 202


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"user": {"user_id": "x"}}', b'{"type": "daily", "data": [{"metadata": {}}]}',
     b'{"type": "daily", "data": [{"metadata": {"start_time": "2026-11-30T00:00:00Z", '
     b'"end_time": "2026-12-01T00:00:00Z"}, "distance_data": {"steps": "many"}}]}', b"\xff\xfe"],
)  # fmt: skip
async def test_signed_but_malformed_bodies_are_400_and_not_stored(
    body: bytes, terra: Settings, terra_client: httpx.AsyncClient, db: AsyncSession
) -> None:
    response = await terra_client.post(URL, content=body, headers=signed_headers(terra, body))

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_payload"
    assert await _events(db) == []
    assert queued(terra) == []


async def test_bodies_over_the_webhook_cap_are_413(settings: Settings, clean_database: str) -> None:
    terra = terra_settings(settings, webhook_max_body_bytes=2048)
    document = daily_event(uuid.uuid4())
    document["data"][0]["heart_rate_data"]["detailed"]["hr_samples"] = [{"bpm": 60}] * 500
    body = body_of(document)
    async with running_app(terra) as app, app_client(app) as client:
        response = await client.post(URL, content=body, headers=signed_headers(terra, body))
        async with app.state.db.sessionmaker() as session:
            stored = await session.scalar(select(func.count()).select_from(WebhookEvent))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert stored == 0


async def test_sweeper_resends_events_whose_enqueue_was_lost(
    terra: Settings, terra_client: httpx.AsyncClient, db: AsyncSession
) -> None:
    from datetime import timedelta

    from app.core.db import task_session
    from app.models.base import utcnow
    from app.webhooks import service

    now = utcnow()

    def event(name: str, received: timedelta, attempts: int = 0, handled: bool = False) -> WebhookEvent:
        return WebhookEvent(
            source="terra",
            external_id=name,
            raw_body=b"{}",
            headers={},
            received_at=now - received,
            attempts=attempts,
            handled_at=now if handled else None,
        )

    lost = event("lost", timedelta(hours=1))
    db.add_all(
        [
            lost,
            event("recent", timedelta(seconds=30)),
            event("retrying", timedelta(hours=1), attempts=2),
            event("done", timedelta(hours=1), attempts=1, handled=True),
        ]
    )
    await db.commit()

    with task_session(terra.sync_database_url) as session:
        assert service.requeue_stale(session, terra, now) == 1
        assert queued(terra) == [], "sent before the sweep committed"

    assert [m["argsrepr"] for m in queued(terra)] == [f"['{lost.id}']"]

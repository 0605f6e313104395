"""Calendar push through the real app's inbox: forged and replayed notifications do nothing; a burst of 50
notifications leaves one sync in flight; a change that arrives during a sync gets a sync of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from googleapiclient.http import HttpMockSequence
from sqlalchemy import func, select

from app.calendar import runner
from app.core import broker
from app.core.config import Settings
from app.core.db import task_session
from app.core.tasks import CALENDAR_SYNC
from app.models import GoogleCalendar, WebhookEvent
from app.models.base import utcnow
from app.webhooks import service as inbox
from tests.calendar.google import channel_row, event, linked_account, notification_headers, ok, page
from tests.support import app_client, running_app
from tests.webhooks.terra import purge_broker, queued

URL = "/v1/webhooks/google-calendar"
TOKEN = "chan-token-" + uuid.uuid4().hex
RESOURCE = "o3hgv1538sdjfh"


@pytest.fixture
async def client(google: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(google) as app, app_client(app) as http:
        yield http


@pytest.fixture
def calendar(google: Settings) -> dict[str, Any]:
    """A linked calendar with a live channel and a stopped one (renewed away)."""
    now = datetime.now(UTC)
    with task_session(google.sync_database_url) as session:
        _, _, row = linked_account(session, google)
        live = channel_row(
            session,
            row,
            channel_id=str(uuid.uuid4()),
            token=TOKEN,
            resource_id=RESOURCE,
            expiration=now + timedelta(days=6),
        )
        stopped = channel_row(
            session,
            row,
            channel_id=str(uuid.uuid4()),
            token=TOKEN,
            resource_id=RESOURCE,
            expiration=now + timedelta(days=1),
        )
        stopped.stopped_at = now
        row.sync_token = "s1"
        return {"row": row.id, "live": live.channel_id, "stopped": stopped.channel_id}


def _sync_jobs(settings: Settings) -> int:
    return sum(1 for headers in queued(settings, "calendar") if headers["task"] == CALENDAR_SYNC)


def _stored_events(settings: Settings) -> list[uuid.UUID]:
    with task_session(settings.sync_database_url) as session:
        return list(session.execute(select(WebhookEvent.id).order_by(WebhookEvent.received_at)).scalars())


def _process(settings: Settings, event_id: uuid.UUID) -> None:
    with task_session(settings.sync_database_url) as session:
        inbox.process(session, settings, event_id, utcnow())


def _counters(settings: Settings, row: uuid.UUID) -> tuple[int, int, datetime | None]:
    with task_session(settings.sync_database_url) as session:
        calendar = session.get(GoogleCalendar, row)
        assert calendar is not None
        return calendar.sync_requested, calendar.sync_completed, calendar.sync_pending_since


async def test_forged_and_replayed_notifications_do_nothing(
    google: Settings, client: httpx.AsyncClient, calendar: dict[str, Any]
) -> None:
    live, stopped = calendar["live"], calendar["stopped"]
    forged = [
        notification_headers(live, "guessed-token", RESOURCE, 2),
        notification_headers(live, TOKEN, "another-resource", 2),
        notification_headers(str(uuid.uuid4()), TOKEN, RESOURCE, 2),
        notification_headers(stopped, TOKEN, RESOURCE, 9),
        {
            k: v
            for k, v in notification_headers(live, TOKEN, RESOURCE, 2).items()
            if k != "x-goog-channel-token"
        },
    ]
    for headers in forged:
        response = await client.post(URL, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_signature"
    assert _stored_events(google) == []

    genuine = notification_headers(live, TOKEN, RESOURCE, 2)
    assert (await client.post(URL, headers=genuine)).status_code == 202
    replay = await client.post(URL, headers=genuine)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    [event_id] = _stored_events(google)
    _process(google, event_id)
    _process(google, event_id)  # a redelivered job: handled already, nothing more
    assert _counters(google, calendar["row"])[0] == 1
    assert _sync_jobs(google) == 1
    # The per-channel secret is never stored with the event.
    with task_session(google.sync_database_url) as session:
        stored = session.get(WebhookEvent, event_id)
        assert stored is not None and "x-goog-channel-token" not in stored.headers
    # "sync" (sent once when a channel opens) asks for nothing.
    assert (
        await client.post(URL, headers=notification_headers(live, TOKEN, RESOURCE, 1, "sync"))
    ).status_code == 202
    for event_id in _stored_events(google):
        _process(google, event_id)
    assert _counters(google, calendar["row"])[0] == 1 and _sync_jobs(google) == 1


async def test_an_unreadable_message_number_is_a_400_not_a_500(
    google: Settings, client: httpx.AsyncClient, calendar: dict[str, Any]
) -> None:
    # "\xb2" arrives as latin-1 "²": str.isdigit took it, int() did not (a 500 before, issue 10).
    genuine = notification_headers(calendar["live"], TOKEN, RESOURCE, 2)
    for number in (b"\xb2", b"-1", b"1" * 21):
        headers = {key.encode(): value.encode() for key, value in genuine.items()}
        headers[b"x-goog-message-number"] = number
        response = await client.post(URL, headers=headers)
        assert response.status_code == 400, (number, response.text)
        assert response.json()["error"]["code"] == "malformed_payload"
    assert _stored_events(google) == []


async def test_a_burst_of_50_notifications_leaves_one_sync_in_flight_and_loses_no_change(
    google: Settings, client: httpx.AsyncClient, calendar: dict[str, Any]
) -> None:
    live, row = calendar["live"], calendar["row"]
    responses = await asyncio.gather(
        *(client.post(URL, headers=notification_headers(live, TOKEN, RESOURCE, n)) for n in range(2, 52))
    )
    assert [r.status_code for r in responses] == [202] * 50
    events = _stored_events(google)
    assert len(events) == 50
    # Processed concurrently, as several ingest workers would: the row lock serialises the counter.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda event_id: _process(google, event_id), events))
    requested, completed, pending = _counters(google, row)
    assert (requested, completed) == (50, 0) and pending is not None
    assert _sync_jobs(google) == 1

    # The sync runs; notification 52 arrives while it lists events.
    late = await client.post(URL, headers=notification_headers(live, TOKEN, RESOURCE, 52))
    assert late.status_code == 202
    [late_event] = [e for e in _stored_events(google) if e not in events]

    class NotifiedDuringSync(HttpMockSequence):  # type: ignore[misc]
        fired = False

        def request(self, uri: str, *args: Any, **kwargs: Any) -> Any:
            if not self.fired:
                self.fired = True
                _process(google, late_event)
            return super().request(uri, *args, **kwargs)

    now = datetime.now(UTC)
    http = NotifiedDuringSync([ok(page([event("x", "Gym", now + timedelta(hours=2))], sync_token="s2"))])
    result = runner.run_sync(google, row, now, http=http)
    assert result is not None and result.upserted == 1
    requested, completed, pending = _counters(google, row)
    assert (requested, completed) == (51, 50)
    assert pending is not None and _sync_jobs(google) == 2  # one more sync for the change during the sync

    # That sync covers it; nothing arrives meanwhile, so nothing more is queued.
    http = HttpMockSequence([ok(page([], sync_token="s3"))])
    runner.run_sync(google, row, datetime.now(UTC), http=http)
    requested, completed, pending = _counters(google, row)
    assert (requested, completed, pending) == (51, 51, None) and _sync_jobs(google) == 2


async def test_a_redelivered_sync_job_does_not_run_while_the_first_holds_the_lease(
    google: Settings, calendar: dict[str, Any]
) -> None:
    from bridges.google import coalesce

    now = datetime.now(UTC)
    with task_session(google.sync_database_url) as session:
        assert coalesce.claim(session, calendar["row"], now) == 0
    # No HTTP call may happen: an empty sequence would fail on the first request.
    assert runner.run_sync(google, calendar["row"], now, http=HttpMockSequence([])) is None
    with task_session(google.sync_database_url) as session:
        count = session.scalar(select(func.count()).select_from(WebhookEvent))
    assert count == 0


async def test_beat_resends_a_sync_whose_job_was_lost(google: Settings, calendar: dict[str, Any]) -> None:
    from bridges.google import coalesce

    now = datetime.now(UTC)
    with task_session(google.sync_database_url) as session:
        row = session.get(GoogleCalendar, calendar["row"])
        assert row is not None
        row.sync_requested, row.sync_pending_since = 3, now - timedelta(minutes=20)  # its job never ran
    with task_session(google.sync_database_url) as session:
        assert coalesce.resend_stuck(session, google, now) == 1
    assert _sync_jobs(google) == 1
    with task_session(google.sync_database_url) as session:
        # Freshly pending again: not resent twice.
        assert coalesce.resend_stuck(session, google, now) == 0
        # A sync holding its lease is running, not lost.
        row = session.get(GoogleCalendar, calendar["row"])
        assert row is not None
        row.sync_pending_since, row.sync_lease_until = now - timedelta(hours=1), now + timedelta(minutes=3)
    with task_session(google.sync_database_url) as session:
        assert coalesce.resend_stuck(session, google, now) == 0


async def test_a_sync_a_killed_worker_held_is_resent_a_minute_after_its_debounce_if_nothing_waits(
    google: Settings, calendar: dict[str, Any]
) -> None:
    """The debounced message sits in a worker until it runs; a worker killed meanwhile takes it along. With
    nothing waiting on the calendar queue, a sync still pending with a free lease a minute past its debounce
    is sent again; while something waits, the 15-minute rule holds (it may be that very message)."""
    from bridges.google import coalesce

    purge_broker(google)
    now = datetime.now(UTC)
    due = google.google_calendar_sync_debounce + broker.STRANDED_AFTER

    def pending_since(ago: timedelta) -> None:
        with task_session(google.sync_database_url) as session:
            row = session.get(GoogleCalendar, calendar["row"])
            assert row is not None
            row.sync_requested, row.sync_pending_since, row.sync_lease_until = 1, now - ago, None

    def resend() -> int:
        with task_session(google.sync_database_url) as session:
            return coalesce.resend_stuck(session, google, now)

    pending_since(due - timedelta(seconds=5))
    assert resend() == 0 and _sync_jobs(google) == 0
    pending_since(due + timedelta(seconds=5))
    assert resend() == 1 and _sync_jobs(google) == 1
    # Its copy waits on the queue now: a backlog for all the sweep can tell, so nothing more is sent.
    pending_since(due + timedelta(minutes=5))
    assert resend() == 0 and _sync_jobs(google) == 1

"""The real google-api-python-client against a local server speaking the Calendar API, driven by a real
Celery worker: a linked account is set up (channel + full sync across pages), its access token is refreshed,
and a burst of 50 push notifications through the real app yields one coalesced incremental sync that brings
the change in."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.benchmarks.calendar_api import CalendarState, calendar_server
from app.core.config import Settings
from app.core.db import task_session
from app.core.tasks import CALENDAR_SETUP_CONNECTION, celery_for
from app.models import CalendarEvent, GoogleCalendar, GoogleChannel
from tests.calendar.google import event, linked_account, notification_headers
from tests.support import app_client, celery_process, running_app
from tests.webhooks.terra import purge_broker

pytestmark = pytest.mark.timeout(240)


@contextmanager
def calendar_worker(settings: Settings, log_dir: Path) -> Iterator[None]:
    env = {
        **os.environ,
        "RHYTHM_ENV": "test",
        "RHYTHM_DATABASE_URL": settings.database_url,
        "RHYTHM_BROKER_URL": settings.broker_url,
        "RHYTHM_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "RHYTHM_SECRET_KEY": settings.secret_key.get_secret_value(),
        "RHYTHM_PUBLIC_BASE_URL": settings.public_base_url,
        "RHYTHM_GOOGLE_CLIENT_ID": settings.google_client_id,
        "RHYTHM_GOOGLE_CLIENT_SECRET": settings.google_client_secret.get_secret_value(),
        "RHYTHM_GOOGLE_TOKEN_URL": settings.google_token_url,
        "RHYTHM_GOOGLE_API_BASE_URL": settings.google_api_base_url,
        "RHYTHM_GOOGLE_TASKS_API_BASE_URL": settings.google_tasks_api_base_url,
        "RHYTHM_GOOGLE_CALENDAR_SYNC_DEBOUNCE": str(settings.google_calendar_sync_debounce.total_seconds()),
    }
    args = ["worker", "--pool", "solo", "-Q", "ingest,calendar,default"]
    args += ["-n", f"calendar-{secrets.token_hex(4)}@%h", "--without-mingle", "--without-gossip"]
    args += ["--without-heartbeat", "-l", "INFO"]
    try:
        with celery_process(args, env, log_dir / "worker.log"):
            yield
    finally:
        purge_broker(settings)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _titles(settings: Settings, user_id: uuid.UUID) -> set[str]:
    with task_session(settings.sync_database_url) as session:
        rows = session.execute(select(CalendarEvent.title).where(CalendarEvent.user_id == user_id)).scalars()
        return {title for title in rows if title}


async def test_real_client_setup_refresh_and_a_coalesced_burst(google: Settings, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0, minute=0, second=0) + timedelta(days=1)
    state = CalendarState(access_token="ya29.current", refresh_token="1//refresh")
    for n, title in enumerate(["Standup", "Gym", "Deep work", "Dinner with Sam", "Dentist"]):
        state.put(event(f"e{n}", title, start + timedelta(hours=n)))
    state.put(event("gone", "Old plan", start))
    state.cancel("gone")  # deleted before we ever saw it: a full sync does not list it

    with calendar_server(state) as base:
        settings = google.model_copy(
            update={
                "google_api_base_url": base,
                "google_tasks_api_base_url": base,
                "google_token_url": base + "/token",
            }
        )
        with task_session(settings.sync_database_url) as session:
            # The stored access token is stale and expired: google-auth refreshes it before the first call.
            user, connection, calendar = linked_account(
                session,
                settings,
                access_token="ya29.stale",
                expires_at=datetime.now(UTC) - timedelta(minutes=1),
            )
            session.delete(calendar)
            user_id, connection_id = user.id, connection.id

        with calendar_worker(settings, tmp_path):
            # What the connect flow enqueues after linking a Google account.
            celery_for(settings).send_task(CALENDAR_SETUP_CONNECTION, args=[str(connection_id)])
            wait_for(
                lambda: (
                    _titles(settings, user_id)
                    >= {"Standup", "Gym", "Deep work", "Dinner with Sam", "Dentist"}
                ),
                "the full sync",
            )
            assert "Old plan" not in _titles(settings, user_id)
            assert state.refreshes == 1
            [watch] = state.watches
            assert watch["address"] == "https://rhythm.example/v1/webhooks/google-calendar"
            with task_session(settings.sync_database_url) as session:
                row = session.scalar(select(GoogleCalendar).where(GoogleCalendar.user_id == user_id))
                assert row is not None and row.sync_token == f"rev-{state.revision}"
                wait_for(lambda: _idle(settings, row.id), "the sync to settle")
                channel = session.scalar(select(GoogleChannel).where(GoogleChannel.channel_id == watch["id"]))
                assert channel is not None
            full_listings = len(state.listings)
            assert full_listings >= 3  # 5 live + 1 cancelled over pages of 2

            # Changes at Google, then 50 notifications in a burst through the real app.
            state.put(event("e5", "Yoga class", start + timedelta(hours=8)))
            state.cancel("e4")
            async with running_app(settings) as app, app_client(app) as client:
                responses = await asyncio.gather(
                    *(
                        client.post(
                            "/v1/webhooks/google-calendar",
                            headers=notification_headers(watch["id"], watch["token"], channel.resource_id, n),
                        )
                        for n in range(2, 52)
                    )
                )
            assert [r.status_code for r in responses] == [202] * 50
            wait_for(
                lambda: (
                    "Yoga class" in _titles(settings, user_id) and "Dentist" not in _titles(settings, user_id)
                ),
                "the incremental sync",
            )
            wait_for(lambda: _idle(settings, row.id, requested=51), "every notification to be processed")
            # 50 notifications, at most two syncs: the one they started and one for those that came during it.
            assert 1 <= state.incremental_listings() <= 2


def _idle(settings: Settings, row_id: uuid.UUID, requested: int | None = None) -> bool:
    with task_session(settings.sync_database_url) as session:
        calendar = session.get(GoogleCalendar, row_id)
        assert calendar is not None
        if requested is not None and calendar.sync_requested != requested:
            return False
        return calendar.sync_pending_since is None and calendar.sync_completed == calendar.sync_requested

"""Deleting a user with a Google connection stops its push channels at Google (the connect flow's pending
revocation runs the ``google`` teardown), then revokes the grant; notifications on the channel are refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.benchmarks.calendar_api import CalendarState, calendar_server
from app.connections import revocations
from app.core.config import Settings
from app.core.db import task_session
from app.models import PendingRevocation
from app.models.base import utcnow
from tests.calendar.google import channel_row, linked_account, notification_headers
from tests.support import admin_headers_for, app_client, create_user_via_api, running_app


async def test_deleting_the_user_stops_the_channels_then_revokes(google: Settings) -> None:
    state = CalendarState(access_token="ya29.current", refresh_token="1//refresh")
    with calendar_server(state) as base:
        settings = google.model_copy(
            update={
                "google_api_base_url": base,
                "google_token_url": base + "/token",
                "google_revoke_url": base + "/revoke",
            }
        )
        async with running_app(settings) as app, app_client(app) as client:
            user_id, headers = await create_user_via_api(client, admin_headers_for(settings), "UTC")
            channel_id = str(uuid.uuid4())
            with task_session(settings.sync_database_url) as session:
                _, _, calendar = linked_account(
                    session, settings, user_id=user_id, access_token="ya29.current"
                )
                channel_row(
                    session,
                    calendar,
                    channel_id=channel_id,
                    token="tok",
                    resource_id="res-1",
                    expiration=datetime.now(UTC) + timedelta(days=3),
                )
            assert (await client.delete(f"/v1/users/{user_id}", headers=headers)).status_code == 204
            # A notification on the channel now finds no channel: refused, nothing stored.
            late = await client.post(
                "/v1/webhooks/google-calendar", headers=notification_headers(channel_id, "tok", "res-1", 7)
            )
            assert late.status_code == 401

        with task_session(settings.sync_database_url) as session:
            [revocation_id] = session.execute(select(PendingRevocation.id)).scalars().all()
        with task_session(settings.sync_database_url) as session:
            assert revocations.process(session, settings, revocation_id, utcnow())
    assert state.stops == [{"id": channel_id, "resourceId": "res-1"}]
    assert state.revoked  # the grant itself went back afterwards

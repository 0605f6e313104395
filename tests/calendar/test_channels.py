"""Push channels with ``HttpMockSequence``: setup watches the user's own calendars, beat renews an expiring
channel (new one first, then stops the old), a 404 on renewal asks the user to reconnect, teardown stops
every live channel."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from googleapiclient.http import HttpMockSequence
from sqlalchemy import select

from app.calendar import runner
from app.core.config import Settings
from app.core.db import task_session
from app.core.tasks import CALENDAR_SYNC
from app.models import DeviceConnection, GoogleCalendar, GoogleChannel
from bridges.google.push import token_hash
from bridges.google.teardown import GoogleChannels
from bridges.oauth.teardown import teardown_for
from tests.calendar.google import PUBLIC_BASE_URL, channel_row, error, linked_account, ok, watch_answer
from tests.webhooks.terra import queued

NOW = datetime.now(UTC).replace(microsecond=0)
NO_CONTENT = ({"status": "204"}, "")


def _calendar_list() -> dict[str, object]:
    entry = {"kind": "calendar#calendarListEntry", "etag": '"1"', "timeZone": "Europe/Berlin"}
    return {
        "kind": "calendar#calendarList",
        "etag": '"l1"',
        "nextSyncToken": "cl-sync",
        "items": [
            {
                **entry,
                "id": "anna@example.com",
                "summary": "Anna",
                "accessRole": "owner",
                "primary": True,
                "selected": True,
            },
            {
                **entry,
                "id": "family123@group.calendar.google.com",
                "summary": "Family",
                "accessRole": "writer",
                "selected": True,
            },
            {
                **entry,
                "id": "en.german#holiday@group.v.calendar.google.com",
                "summary": "Holidays",
                "accessRole": "reader",
                "selected": True,
            },
            {
                **entry,
                "id": "old@group.calendar.google.com",
                "summary": "Old",
                "accessRole": "owner",
                "selected": False,
            },
        ],
    }


def test_setup_watches_the_users_calendars_and_requests_a_first_sync(google: Settings) -> None:
    with task_session(google.sync_database_url) as session:
        user, connection, existing = linked_account(session, google)
        session.delete(existing)  # setup discovers the calendars itself
        connection_id, user_id = connection.id, user.id
    expiration = NOW + timedelta(days=7)
    http = HttpMockSequence(
        [
            ok(_calendar_list()),
            watch_answer("ignored", "res-anna", expiration),
            watch_answer("ignored", "res-family", expiration),
        ]
    )
    rows = runner.run_setup(google, connection_id, NOW, http=http)
    assert len(rows) == 2

    (list_uri, *_), (watch1_uri, _, body1, _), (watch2_uri, _, body2, _) = http.request_sequence
    assert "calendarList" in list_uri
    assert "/calendars/anna%40example.com/events/watch" in watch1_uri
    assert "/calendars/family123%40group.calendar.google.com/events/watch" in watch2_uri
    watch = json.loads(body1)
    assert (
        watch["type"] == "web_hook" and watch["address"] == PUBLIC_BASE_URL + "/v1/webhooks/google-calendar"
    )
    assert watch["params"] == {"ttl": str(7 * 24 * 3600)}
    with task_session(google.sync_database_url) as session:
        channels = (
            session.execute(select(GoogleChannel).where(GoogleChannel.user_id == user_id)).scalars().all()
        )
        by_resource = {c.resource_id: c for c in channels}
        assert set(by_resource) == {"res-anna", "res-family"}
        anna = by_resource["res-anna"]
        assert anna.channel_id == watch["id"] and anna.token_hash == token_hash(watch["token"])
        assert watch["token"] not in anna.token_hash and len(watch["token"]) >= 32
        assert abs((anna.expiration - expiration).total_seconds()) < 1
        assert json.loads(body2)["token"] != watch["token"]  # one secret per channel
    assert sum(1 for h in queued(google, "calendar") if h["task"] == CALENDAR_SYNC) == 2

    # Again (a redelivered setup job): no new channel, no second sync in flight.
    again = HttpMockSequence([ok(_calendar_list())])
    runner.run_setup(google, connection_id, NOW, http=again)
    with task_session(google.sync_database_url) as session:
        assert len(session.execute(select(GoogleChannel.id)).all()) == 2
    assert sum(1 for h in queued(google, "calendar") if h["task"] == CALENDAR_SYNC) == 2


def _channels(settings: Settings) -> tuple[uuid.UUID, str, str]:
    with task_session(settings.sync_database_url) as session:
        _, connection, calendar = linked_account(session, settings)
        expiring = channel_row(
            session,
            calendar,
            channel_id=str(uuid.uuid4()),
            token="t1",
            resource_id="res-1",
            expiration=NOW + timedelta(hours=1),
        )
        fresh = channel_row(
            session,
            calendar,
            channel_id=str(uuid.uuid4()),
            token="t2",
            resource_id="res-1",
            expiration=NOW + timedelta(days=6),
        )
        return connection.id, expiring.channel_id, fresh.channel_id


def test_an_expiring_channel_is_renewed_then_stopped(google: Settings) -> None:
    _, expiring, fresh = _channels(google)
    http = HttpMockSequence([watch_answer("ignored", "res-1", NOW + timedelta(days=7)), NO_CONTENT])
    assert runner.run_renewals(google, NOW, http=http) == 1

    (watch_uri, _, watch_body, _), (stop_uri, _, stop_body, _) = http.request_sequence
    assert watch_uri.endswith("/events/watch?alt=json") and "/calendar/v3/channels/stop" in stop_uri
    assert json.loads(stop_body) == {"id": expiring, "resourceId": "res-1"}
    with task_session(google.sync_database_url) as session:
        channels = {c.channel_id: c for c in session.execute(select(GoogleChannel)).scalars()}
        assert channels[expiring].stopped_at is not None
        assert channels[fresh].stopped_at is None  # not due yet
        new_id = json.loads(watch_body)["id"]
        assert channels[new_id].stopped_at is None and channels[new_id].expiration > NOW + timedelta(days=6)


def test_a_404_on_renewal_asks_the_user_to_reconnect(google: Settings) -> None:
    connection_id, expiring, _ = _channels(google)
    http = HttpMockSequence([error(404, "notFound", "Not Found")])
    assert runner.run_renewals(google, NOW, http=http) == 0
    with task_session(google.sync_database_url) as session:
        connection = session.get(DeviceConnection, connection_id)
        assert connection is not None and connection.status == "needs_reconsent"
        old = session.scalar(select(GoogleChannel).where(GoogleChannel.channel_id == expiring))
        assert old is not None and old.stopped_at is None
    # A connection that needs re-consent is not retried on every beat run.
    assert runner.run_renewals(google, NOW, http=HttpMockSequence([])) == 0


def test_teardown_stops_every_live_channel(google: Settings) -> None:
    assert isinstance(teardown_for("google"), GoogleChannels)
    _, expiring, fresh = _channels(google)
    with task_session(google.sync_database_url) as session:
        connection = session.scalar(select(DeviceConnection))
        assert connection is not None
        payload = GoogleChannels().collect(session, connection)
        calendar = session.scalar(select(GoogleCalendar))
        assert calendar is not None
    assert sorted(c["id"] for c in payload["channels"]) == sorted([expiring, fresh])
    from tests.calendar.google import stored_tokens

    with task_session(google.sync_database_url) as session:
        tokens = stored_tokens(google, session.get(DeviceConnection, calendar.connection_id))  # type: ignore[arg-type]
    # The second channel is already gone at Google: a 404 counts as stopped.
    http = HttpMockSequence([NO_CONTENT, error(404, "notFound", "Channel not found")])
    GoogleChannels(http).run(json.loads(json.dumps(payload)), tokens, google)
    stopped = sorted(json.loads(body)["id"] for _, _, body, _ in http.request_sequence)
    assert stopped == sorted([expiring, fresh])


def test_a_refused_watch_still_syncs_and_beat_reconciles(google: Settings) -> None:
    with task_session(google.sync_database_url) as session:
        _, connection, existing = linked_account(session, google)
        session.delete(existing)
        connection_id = connection.id
    calendars = _calendar_list()
    calendars["items"] = calendars["items"][:1]  # type: ignore[index]
    http = HttpMockSequence(
        [ok(calendars), error(400, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS")]
    )
    [row] = runner.run_setup(google, connection_id, NOW, http=http)
    with task_session(google.sync_database_url) as session:
        assert session.execute(select(GoogleChannel.id)).first() is None
        calendar = session.get(GoogleCalendar, row)
        assert calendar is not None and calendar.sync_requested == 1
        # Synced long ago and nothing pending: beat's pass asks for a sync.
        calendar.sync_pending_since, calendar.last_synced_at = None, NOW - timedelta(hours=7)
    before = sum(1 for h in queued(google, "calendar") if h["task"] == CALENDAR_SYNC)
    runner.run_renewals(google, NOW, http=HttpMockSequence([]))
    assert sum(1 for h in queued(google, "calendar") if h["task"] == CALENDAR_SYNC) == before + 1

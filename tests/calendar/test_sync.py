"""Calendar sync with google-api-python-client's own ``HttpMockSequence``: pagination, recurring instances,
cancellations, 410 recovery, 401 → token refresh, lost consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

from googleapiclient.http import HttpMockSequence
from sqlalchemy import select

from app.benchmarks.calendar_api import CalendarState, calendar_server
from app.calendar import runner, sync
from app.core.config import Settings
from app.core.db import task_session
from app.models import CalendarCorrection, CalendarEvent, DeviceConnection, GoogleCalendar
from app.models.calendar import CorrectionKind
from domain import Action
from tests.bridges.chat_server import ChatServer
from tests.calendar.google import (
    all_day,
    cancelled,
    error,
    event,
    instance,
    linked_account,
    ok,
    page,
    stored_tokens,
    token_answer,
)

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY_9 = NOW.replace(hour=9, minute=0, second=0) + timedelta(days=1)


def _query(uri: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(uri).query)


def _events(settings: Settings, user_id: object) -> dict[str, CalendarEvent]:
    with task_session(settings.sync_database_url) as session:
        rows = session.execute(select(CalendarEvent).where(CalendarEvent.user_id == user_id)).scalars()
        return {row.external_id: row for row in rows}


def _arrange(settings: Settings, **kwargs: object) -> tuple[object, object, object]:
    with task_session(settings.sync_database_url) as session:
        user, connection, calendar = linked_account(session, settings, **kwargs)  # type: ignore[arg-type]
        return user.id, connection.id, calendar.id


def test_full_sync_reads_every_page_and_keeps_the_last_pages_token(google: Settings) -> None:
    user_id, _, calendar_id = _arrange(google)
    standup = [
        instance(
            "standup",
            "Daily standup",
            TODAY_9 + timedelta(days=d),
            attendees=[
                {"email": "anna@example.com", "self": True, "responseStatus": "accepted"},
                {"email": "ben@example.com", "responseStatus": "accepted"},
                {"email": "cleo@example.com", "responseStatus": "needsAction"},
            ],
        )
        for d in range(3)
    ]
    http = HttpMockSequence(
        [
            ok(page([event("gym1", "Gym", TODAY_9 + timedelta(hours=8)), standup[0]], next_page="p2")),
            # Google may send an empty page with more to come.
            ok(page([], next_page="p3")),
            ok(
                page(
                    [
                        standup[1],
                        standup[2],
                        all_day("ooo", "Vacation", TODAY_9 + timedelta(days=4), 3, eventType="outOfOffice"),
                        event(
                            "hold",
                            "Hold for travel",
                            TODAY_9 + timedelta(hours=3),
                            transparency="transparent",
                        ),
                    ],
                    sync_token="sync-after-full",
                )
            ),
        ]
    )
    with task_session(google.sync_database_url) as session:
        result = sync.sync_calendar(session, google, calendar_id, NOW, http=http)  # type: ignore[arg-type]
    assert result.full and result.upserted == 6

    uris = [uri for uri, *_ in http.request_sequence]
    assert len(uris) == 3
    first = _query(uris[0])
    assert first["singleEvents"] == ["true"] and "timeMin" in first and "syncToken" not in first
    assert _query(uris[1])["pageToken"] == ["p2"] and _query(uris[2])["pageToken"] == ["p3"]

    events = _events(google, user_id)
    assert set(events) == {"gym1", *(s["id"] for s in standup), "ooo", "hold"}
    assert events["gym1"].action is Action.EXERCISE and events["gym1"].action_source == "rule"
    assert all(events[s["id"]].recurring_event_id == "standup" for s in standup)
    assert events[standup[0]["id"]].action is Action.ADMIN_WORK and events[standup[0]["id"]].attendees == 3
    # All-day and transparent events are kept (context) but are not actions.
    assert events["ooo"].all_day and events["ooo"].action is None and events["ooo"].context == "out_of_office"
    assert events["hold"].transparent and events["hold"].action is None
    # Slots are the user's (UTC here): 17:00 is Evening.
    assert events["gym1"].slots == [
        {"date": (TODAY_9 + timedelta(hours=8)).date().isoformat(), "slot": "EVENING"}
    ]
    with task_session(google.sync_database_url) as session:
        calendar = session.get(GoogleCalendar, calendar_id)
        assert calendar is not None and calendar.sync_token == "sync-after-full"


def test_incremental_sync_applies_changes_deletions_and_keeps_newer_copies(google: Settings) -> None:
    user_id, _, calendar_id = _arrange(google)
    first = HttpMockSequence(
        [
            ok(
                page(
                    [
                        event("a", "Deep work: report", TODAY_9, 120, updated=NOW - timedelta(hours=2)),
                        event(
                            "b",
                            "Dinner with Sam",
                            TODAY_9 + timedelta(hours=10),
                            updated=NOW - timedelta(hours=2),
                        ),
                        event("c", "Dentist", TODAY_9 + timedelta(hours=4), updated=NOW - timedelta(hours=1)),
                    ],
                    sync_token="s1",
                )
            )
        ]
    )
    with task_session(google.sync_database_url) as session:
        sync.sync_calendar(session, google, calendar_id, NOW, http=first)  # type: ignore[arg-type]

    second = HttpMockSequence(
        [
            ok(page([event("a", "Yoga", TODAY_9, 60, updated=NOW - timedelta(minutes=5))], next_page="n2")),
            ok(
                page(
                    [
                        cancelled("b", NOW - timedelta(minutes=4)),
                        # An older copy of "c" than the one stored must not win.
                        event("c", "Netflix", TODAY_9 + timedelta(hours=4), updated=NOW - timedelta(hours=3)),
                        event(
                            "d",
                            "Team lunch",
                            TODAY_9 + timedelta(hours=3),
                            updated=NOW - timedelta(minutes=3),
                        ),
                    ],
                    sync_token="s2",
                )
            ),
        ]
    )
    with task_session(google.sync_database_url) as session:
        result = sync.sync_calendar(session, google, calendar_id, NOW, http=second)  # type: ignore[arg-type]
    assert not result.full and result.deleted == 1
    uris = [uri for uri, *_ in second.request_sequence]
    assert _query(uris[0])["syncToken"] == ["s1"] and "timeMin" not in _query(uris[0])
    assert _query(uris[1])["syncToken"] == ["s1"] and _query(uris[1])["pageToken"] == ["n2"]

    events = _events(google, user_id)
    assert set(events) == {"a", "c", "d"}
    assert events["a"].title == "Yoga" and events["a"].action is Action.EXERCISE
    assert events["c"].title == "Dentist"
    with task_session(google.sync_database_url) as session:
        calendar = session.get(GoogleCalendar, calendar_id)
        assert calendar is not None and calendar.sync_token == "s2"


def test_a_failed_page_stores_nothing_and_keeps_the_old_token(google: Settings) -> None:
    user_id, _, calendar_id = _arrange(google)
    with task_session(google.sync_database_url) as session:
        calendar = session.get(GoogleCalendar, calendar_id)
        assert calendar is not None
        calendar.sync_token = "s1"
    http = HttpMockSequence(
        [
            ok(page([event("a", "Gym", TODAY_9)], next_page="n2")),
            error(400, "invalid", "Invalid Value"),
        ]
    )
    try:
        with task_session(google.sync_database_url) as session:
            sync.sync_calendar(session, google, calendar_id, NOW, http=http)  # type: ignore[arg-type]
    except Exception as exc:
        assert "400" in str(exc)
    else:
        raise AssertionError("a failing page must fail the sync")
    assert _events(google, user_id) == {}
    with task_session(google.sync_database_url) as session:
        calendar = session.get(GoogleCalendar, calendar_id)
        assert calendar is not None and calendar.sync_token == "s1"


def test_410_wipes_the_calendar_and_resyncs_keeping_the_users_corrections(google: Settings) -> None:
    user_id, _, calendar_id = _arrange(google)
    first = HttpMockSequence(
        [
            ok(
                page(
                    [
                        instance("weekly", "Catch-up", TODAY_9),
                        event("gone", "Old meeting", TODAY_9 + timedelta(hours=1)),
                    ],
                    sync_token="s1",
                )
            )
        ]
    )
    with task_session(google.sync_database_url) as session:
        sync.sync_calendar(session, google, calendar_id, NOW, http=first)  # type: ignore[arg-type]
        # The user said the whole series is family time.
        session.add(
            CalendarCorrection(
                user_id=user_id, kind=CorrectionKind.SERIES, key="weekly", action=Action.FAMILY_TIME
            )
        )

    recovery = HttpMockSequence(
        [
            error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required."),
            ok(page([instance("weekly", "Catch-up", TODAY_9 + timedelta(days=7))], next_page="f2")),
            ok(page([event("new", "Piano lesson", TODAY_9 + timedelta(hours=9))], sync_token="s-fresh")),
        ]
    )
    with task_session(google.sync_database_url) as session:
        result = sync.sync_calendar(session, google, calendar_id, NOW, http=recovery)  # type: ignore[arg-type]
    assert result.full
    uris = [uri for uri, *_ in recovery.request_sequence]
    assert _query(uris[0])["syncToken"] == ["s1"]
    assert "syncToken" not in _query(uris[1]) and "timeMin" in _query(uris[1])

    events = _events(google, user_id)
    next_week = instance("weekly", "Catch-up", TODAY_9 + timedelta(days=7))["id"]
    assert set(events) == {next_week, "new"}  # the wiped copy is gone, the fresh listing is complete
    assert events[next_week].action is Action.FAMILY_TIME and events[next_week].action_source == "user"
    with task_session(google.sync_database_url) as session:
        calendar = session.get(GoogleCalendar, calendar_id)
        assert calendar is not None and calendar.sync_token == "s-fresh"
        assert (
            session.scalar(select(CalendarCorrection).where(CalendarCorrection.user_id == user_id))
            is not None
        )


def test_401_refreshes_the_token_through_google_auth_and_stores_it_encrypted(google: Settings) -> None:
    user_id, connection_id, calendar_id = _arrange(google, access_token="ya29.stale")
    http = HttpMockSequence(
        [
            error(401, "authError", "Invalid Credentials"),
            token_answer("ya29.fresh"),
            ok(page([event("a", "Run", TODAY_9)], sync_token="s1")),
        ]
    )
    with task_session(google.sync_database_url) as session:
        sync.sync_calendar(session, google, calendar_id, NOW, http=http)  # type: ignore[arg-type]

    (_, _, _, first_headers), (token_uri, method, body, _), (_, _, _, retry_headers) = http.request_sequence
    assert first_headers["authorization"] == "Bearer ya29.stale"
    assert token_uri == google.google_token_url and method == "POST"
    form = parse_qs(body.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["1//refresh"]
    assert retry_headers["authorization"] == "Bearer ya29.fresh"
    with task_session(google.sync_database_url) as session:
        connection = session.get(DeviceConnection, connection_id)
        assert connection is not None
        tokens = stored_tokens(google, connection)
        assert tokens is not None and tokens.access_token == "ya29.fresh"
        assert tokens.refresh_token == "1//refresh"  # kept: Google sent no new one
        assert "ya29.fresh" not in (connection.access_token_encrypted or "")
    assert set(_events(google, user_id)) == {"a"}


def test_a_refused_refresh_marks_the_connection_needs_reconsent(google: Settings) -> None:
    # The token endpoint no longer knows our refresh token (the user revoked access at Google).
    state = CalendarState(access_token="ya29.other", refresh_token="1//someone-else")
    with calendar_server(state) as base:
        settings = google.model_copy(
            update={"google_token_url": base + "/token", "google_api_base_url": base}
        )
        _, connection_id, calendar_id = _arrange(settings, expires_at=NOW - timedelta(minutes=5))
        with task_session(settings.sync_database_url) as session:
            session.get(GoogleCalendar, calendar_id).sync_pending_since = NOW  # type: ignore[union-attr]
        result = runner.run_sync(settings, calendar_id, NOW)  # type: ignore[arg-type]
    assert result is not None and result.skipped
    assert state.listings == []  # never called the API with a dead token
    with task_session(google.sync_database_url) as session:
        connection = session.get(DeviceConnection, connection_id)
        assert connection is not None and connection.status == "needs_reconsent"
        calendar = session.get(GoogleCalendar, calendar_id)
        assert (
            calendar is not None and calendar.sync_lease_until is None and calendar.sync_pending_since is None
        )


def test_an_unsure_title_gets_the_llms_verdict_when_one_is_configured(google: Settings) -> None:
    chat = ChatServer({"Ceilidh": "SOCIALIZE"}).start()
    try:
        items = [
            event("gym", "Gym", TODAY_9 + timedelta(hours=9)),
            event("c", "Ceilidh", TODAY_9 + timedelta(hours=10)),
        ]
        # Off (the default): the rules' time-of-day guess stands and nothing is sent.
        user_id, _, calendar_id = _arrange(google)
        with task_session(google.sync_database_url) as session:
            http = HttpMockSequence([ok(page(items, sync_token="s1"))])
            sync.sync_calendar(session, google, calendar_id, NOW, http=http)  # type: ignore[arg-type]
        events = _events(google, user_id)
        assert events["c"].action_source == "rule" and events["c"].action is not Action.SOCIALIZE
        assert chat.requests == []

        on = google.model_copy(update={"calendar_llm_url": chat.url, "calendar_llm_model": "small-chat"})
        other_id, _, other_calendar = _arrange(on, calendar_id="ben@example.com")
        with task_session(on.sync_database_url) as session:
            http = HttpMockSequence([ok(page(items, sync_token="s1"))])
            sync.sync_calendar(session, on, other_calendar, NOW, http=http)  # type: ignore[arg-type]
        events = _events(on, other_id)
        assert (events["c"].action, events["c"].action_source) == (Action.SOCIALIZE, "llm")
        assert events["gym"].action_source == "rule"
        assert chat.titles() == ["Ceilidh"]
    finally:
        chat.stop()

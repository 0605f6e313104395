"""Backfill on link and the daily reconcile (a window of the provider's collections, paginated, upserted
idempotently), and Oura's app-wide subscriptions created and renewed against a local Oura server."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from app.core import jobs
from app.core.config import Settings
from app.core.db import task_session
from app.core.tasks import BACKFILL_CONNECTION
from app.wearables import service as wearables_service
from bridges.connections import ConnectionStatus
from bridges.oura.provider import MAPPERS as OURA_MAPPERS
from tests.wearables.payloads import (
    OURA_USER,
    WHOOP_USER,
    oura_sleep,
    whoop_cycle,
    whoop_recovery,
    whoop_sleep,
)
from tests.wearables.provider_server import Answer, ProviderServer
from tests.wearables.support import NewUser, connection, kinds, link, readings

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def pull(settings: Settings, connection_id: uuid.UUID, days: int = 28) -> int:
    with task_session(settings.sync_database_url) as session:
        return wearables_service.pull_connection(session, settings, connection_id, NOW, days)


async def test_whoop_backfill_pages_through_the_window_and_is_idempotent(
    wearables: Settings, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    connection_id = link(wearables, user_id, "whoop", str(WHOOP_USER))
    other = {**whoop_sleep(), "id": "0f0b7c9e-0000-4000-8000-000000000001", "end": "2026-11-30T07:00:00.000Z"}
    server.on(
        "GET",
        "/v2/activity/sleep",
        Answer(200, {"records": [whoop_sleep()], "next_token": "page-2"}),
        Answer(200, {"records": [other], "next_token": None}),
    )
    server.json("/v2/recovery", {"records": [whoop_recovery()], "next_token": None})
    server.json("/v2/cycle", {"records": [whoop_cycle()]})

    first = pull(wearables, connection_id)

    sleeps = server.requests_to("/v2/activity/sleep")
    assert [call.query.get("nextToken") for call in sleeps] == [None, "page-2"]
    assert sleeps[0].query["start"] == (NOW - timedelta(days=28)).isoformat()
    assert sleeps[0].query["limit"] == "25"
    # Two nights of seven sleep readings, the recovery's three (score, RHR, RMSSD), the cycle's strain.
    assert first == 2 * 7 + 3 + 1
    assert len(readings(wearables, user_id)) == first
    # The same window again (the daily reconcile over pushed data) writes nothing.
    assert pull(wearables, connection_id) == 0
    row, _ = connection(wearables, connection_id)
    assert row.provider_data is not None and "last_pull_at" in row.provider_data


async def test_oura_backfill_reads_each_mapped_collection(
    wearables: Settings, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    connection_id = link(wearables, user_id, "oura", OURA_USER)
    server.json("/v2/usercollection/sleep", {"data": [oura_sleep()], "next_token": None})
    server.json(
        "/v2/usercollection/daily_readiness",
        {"data": [{"id": "r1", "day": "2026-12-01", "score": 71, "contributors": {"hrv_balance": 80}}]},
    )
    server.json(
        "/v2/usercollection/daily_stress",
        {"data": [{"id": "s1", "day": "2026-12-01", "stress_high": 3600, "recovery_high": 10800}]},
    )
    server.json("/v2/usercollection/daily_sleep", {"data": []})
    server.json(
        "/v2/usercollection/daily_activity", {"data": [{"id": "a1", "day": "2026-12-01", "steps": 7400}]}
    )

    assert pull(wearables, connection_id, days=3) == 8 + 3

    values = kinds(readings(wearables, user_id))
    assert values["readiness_score"] == 71.0 and values["steps"] == 7400.0
    assert values["stress_score"] == 25.0  # 1 h of high stress against 3 h of high recovery
    assert server.requests_to("/v2/usercollection/sleep")[0].query == {
        "start_date": "2026-11-28",
        "end_date": "2026-12-03",
    }


async def test_a_pull_whose_refresh_is_refused_marks_the_connection_and_writes_nothing(
    wearables: Settings, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    # An expired access token is refreshed before use; the provider refuses the grant.
    connection_id = link(wearables, user_id, "whoop", str(WHOOP_USER), expires_in=timedelta(minutes=-5))
    server.on("POST", "/oauth/token", Answer(401, {"error": "invalid_grant"}))

    assert pull(wearables, connection_id) == 0

    row, _ = connection(wearables, connection_id)
    assert row.status == ConnectionStatus.NEEDS_RECONSENT
    assert server.requests_to("/v2/activity/sleep") == []
    assert pull(wearables, connection_id) == 0  # skipped until the user links again
    assert len(server.requests_to("/oauth/token")) == 1


async def test_the_reconcile_enqueues_one_short_pull_per_active_pulled_connection(
    wearables: Settings, new_user: NewUser
) -> None:
    user_id, _ = await new_user()
    active = link(wearables, user_id, "whoop", str(WHOOP_USER))
    stale = link(wearables, user_id, "oura", OURA_USER)
    link(wearables, user_id, "garmin", "garmin-1")  # pushed, never pulled
    with task_session(wearables.sync_database_url) as session:
        row = session.get(type(connection(wearables, stale)[0]), stale)
        assert row is not None
        row.status = ConnectionStatus.NEEDS_RECONSENT
    with task_session(wearables.sync_database_url) as session:
        assert wearables_service.schedule_reconcile(session, wearables) == 1
        [job] = jobs.pending_jobs(session)
        session.info.clear()  # nothing to send: the job itself is what is checked
    assert job == jobs.Job(BACKFILL_CONNECTION, (str(active),), {"days": wearables.wearable_reconcile_days})


def test_oura_subscriptions_are_created_then_renewed_only_when_expiring(
    wearables: Settings, server: ProviderServer
) -> None:
    callback = wearables.public_base_url.rstrip("/") + "/v1/webhooks/oura"
    server.on("GET", "/v2/webhook/subscription", Answer(200, []))
    server.on("POST", "/v2/webhook/subscription", Answer(201, {"id": "new"}))
    data_types = len(OURA_MAPPERS)

    with httpx.Client() as client:
        created = wearables_service.ensure_oura_subscriptions(wearables, NOW, client)

    posts = [seen for seen in server.seen if seen.method == "POST"]
    assert created == len(posts) == data_types * 2
    later = (NOW + timedelta(days=60)).isoformat()
    soon = (NOW + timedelta(days=3)).isoformat()
    listing = [
        {
            "id": f"{data_type}-{event}",
            "callback_url": callback,
            "data_type": data_type,
            "event_type": event,
            "expiration_time": soon if (data_type, event) == ("sleep", "update") else later,
        }
        for data_type in OURA_MAPPERS
        for event in wearables_service.OURA_EVENT_TYPES
    ]
    server.on("GET", "/v2/webhook/subscription", Answer(200, listing))
    server.on("PUT", "/v2/webhook/subscription/renew/sleep-update", Answer(200, {}))

    with httpx.Client() as client:
        assert wearables_service.ensure_oura_subscriptions(wearables, NOW, client) == 1
    assert json.dumps(server.seen[-1].path) == json.dumps("/v2/webhook/subscription/renew/sleep-update")

"""Fetch after notify: a stored WHOOP / Oura / Google Health notification is processed by fetching the named
object from a local server that answers as the provider's REST API does (401 → refresh, 429 with
Retry-After, 5xx), with the linked connection's token; Garmin's push carries its data."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from app.core.config import Settings
from bridges.connections import ConnectionStatus
from bridges.oauth import ProviderUnavailable
from bridges.webhooks import UnmappableEvent
from tests.wearables.payloads import (
    CYCLE_ID,
    GARMIN_USER,
    GOOGLE_USER,
    OURA_SLEEP_ID,
    OURA_USER,
    SLEEP_ID,
    WHOOP_USER,
    body_of,
    garmin_push,
    google_event,
    google_headers,
    oura_event,
    oura_headers,
    oura_sleep,
    whoop_cycle,
    whoop_event,
    whoop_headers,
    whoop_recovery,
    whoop_sleep,
)
from tests.wearables.provider_server import Answer, ProviderServer, token_answer
from tests.wearables.support import NewUser, connection, deliver, event, kinds, link, process, readings

SLEEP = f"/v2/activity/sleep/{SLEEP_ID}"
RECOVERY = f"/v2/cycle/{CYCLE_ID}/recovery"
CYCLE = f"/v2/cycle/{CYCLE_ID}"
MORNING = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def serve_whoop(server: ProviderServer) -> None:
    server.json(SLEEP, whoop_sleep())
    server.json(RECOVERY, whoop_recovery())
    server.json(CYCLE, whoop_cycle())


async def whoop_delivery(
    client: httpx.AsyncClient, settings: Settings, kind: str = "recovery.updated", user: int = WHOOP_USER
) -> uuid.UUID:
    body = body_of(whoop_event(kind, user))
    return await deliver(client, settings, "/v1/webhooks/whoop", body, whoop_headers(settings, body))


async def test_whoop_recovery_is_fetched_through_the_sleep_and_its_cycle(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    link(wearables, user_id, "whoop", str(WHOOP_USER))
    serve_whoop(server)
    event_id = await whoop_delivery(wclient, wearables)

    assert process(wearables, event_id).written == 4

    rows = readings(wearables, user_id)
    # v2's recovery id is the sleep UUID: sleep → cycle_id → the cycle's recovery, keyed by the night's end.
    assert [r.path for r in server.seen] == [SLEEP, RECOVERY, CYCLE]
    assert all(seen.bearer == "access-1" for seen in server.seen)
    assert kinds(rows) == {
        "hrv_rmssd": 31.8,
        "recovery_score": 44.0,
        "resting_heart_rate": 64.0,
        "strain_score": 50.0,  # 10.5 of 21
    }
    assert {observed for _, kind, _, observed in rows if kind != "strain_score"} == {MORNING}
    stored = event(wearables, event_id)
    assert stored.handled_at is not None and stored.user_id == user_id and stored.error is None

    # Processing the same event again (a redelivered task or a replay) fetches and writes nothing.
    assert process(wearables, event_id).written == 0
    assert len(server.seen) == 3


async def test_whoop_sleep_maps_stages_and_the_deep_share(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    link(wearables, user_id, "whoop", str(WHOOP_USER))
    serve_whoop(server)
    process(wearables, await whoop_delivery(wclient, wearables, "sleep.updated"))

    assert kinds(readings(wearables, user_id)) == {
        "deep_sleep_percent": round(100 * 5_400_000 / 27_000_000, 3),
        "sleep_awake": 30.0,
        "sleep_deep": 90.0,
        "sleep_duration": 450.0,  # in bed − awake, minutes
        "sleep_light": 240.0,
        "sleep_rem": 120.0,
        "sleep_score": 88.0,
    }


async def test_a_delivery_for_an_account_we_have_not_linked_writes_nothing(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer
) -> None:
    # The body's user id is the provider's; it is only ever looked up among our stored connections.
    user_id, _ = await new_user()
    link(wearables, user_id, "whoop", str(WHOOP_USER))
    serve_whoop(server)
    event_id = await whoop_delivery(wclient, wearables, user=WHOOP_USER + 1)

    with pytest.raises(UnmappableEvent):
        process(wearables, event_id)

    assert server.seen == [] and readings(wearables) == []
    stored = event(wearables, event_id)
    assert stored.handled_at is None and "not linked" in (stored.error or "")


async def test_a_401_refreshes_the_token_once_and_retries(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    connection_id = link(wearables, user_id, "whoop", str(WHOOP_USER))
    serve_whoop(server)
    server.on("GET", SLEEP, Answer(401, {"error": "invalid_token"}), Answer(200, whoop_sleep()))
    server.on("POST", "/oauth/token", token_answer("access-2"))

    assert process(wearables, await whoop_delivery(wclient, wearables)).written == 4

    [token_call] = server.requests_to("/oauth/token")
    assert (
        token_call.form["grant_type"] == "refresh_token" and token_call.form["refresh_token"] == "refresh-1"
    )
    assert [seen.bearer for seen in server.requests_to(SLEEP)] == ["access-1", "access-2"]
    row, tokens = connection(wearables, connection_id)
    assert row.status == ConnectionStatus.ACTIVE and tokens is not None
    assert (tokens.access_token, tokens.refresh_token) == ("access-2", "refresh-2")
    assert row.access_token_encrypted is not None and "access-2" not in row.access_token_encrypted


async def test_a_refused_refresh_leaves_the_connection_needing_reconsent_and_the_event_failed(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    connection_id = link(wearables, user_id, "whoop", str(WHOOP_USER))
    server.on("GET", SLEEP, Answer(401, {"error": "invalid_token"}))
    server.on("POST", "/oauth/token", Answer(400, {"error": "invalid_grant"}))
    event_id = await whoop_delivery(wclient, wearables)

    result = process(wearables, event_id)

    assert result.failed and result.written == 0
    row, _ = connection(wearables, connection_id)
    assert row.status == ConnectionStatus.NEEDS_RECONSENT and "invalid_grant" in (row.status_reason or "")
    stored = event(wearables, event_id)
    assert stored.handled_at is None and stored.attempts == 1 and stored.user_id == user_id
    assert (stored.error or "").startswith("ReconsentRequired")


async def test_429_is_retried_after_the_time_the_provider_asks(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    link(wearables, user_id, "oura", OURA_USER)
    path = f"/v2/usercollection/sleep/{OURA_SLEEP_ID}"
    server.on(
        "GET", path, Answer(429, {"detail": "slow down"}, {"Retry-After": "1"}), Answer(200, oura_sleep())
    )
    body = body_of(oura_event())
    event_id = await deliver(wclient, wearables, "/v1/webhooks/oura", body, oura_headers(wearables, body))

    started = time.monotonic()
    written = process(wearables, event_id).written
    waited = time.monotonic() - started

    assert written == 8 and waited >= 1.0
    assert len(server.requests_to(path)) == 2
    values = kinds(readings(wearables, user_id))
    assert values["hrv_rmssd"] == 52.0 and values["resting_heart_rate"] == 49.0
    assert values["sleep_duration"] == 430.0 and values["deep_sleep_percent"] == round(100 * 4800 / 25800, 3)


async def test_a_retry_after_longer_than_a_task_waits_fails_the_attempt_for_a_later_retry(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    link(wearables, user_id, "oura", OURA_USER)
    path = f"/v2/usercollection/sleep/{OURA_SLEEP_ID}"
    server.on("GET", path, Answer(429, {}, {"Retry-After": "3600"}))
    body = body_of(oura_event())
    event_id = await deliver(wclient, wearables, "/v1/webhooks/oura", body, oura_headers(wearables, body))

    with pytest.raises(ProviderUnavailable):
        process(wearables, event_id)

    stored = event(wearables, event_id)
    assert stored.handled_at is None and stored.attempts == 1 and "retry after 3600" in (stored.error or "")

    # The provider recovers; the inbox's next attempt (a retry or an operator's replay) succeeds.
    server.on("GET", path, Answer(200, oura_sleep()))
    assert process(wearables, event_id).written == 8
    assert event(wearables, event_id).error is None


async def test_server_errors_are_retried_then_left_visible(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    link(wearables, user_id, "whoop", str(WHOOP_USER))
    serve_whoop(server)
    server.on("GET", SLEEP, Answer(502, None), Answer(503, None), Answer(200, whoop_sleep()))
    assert process(wearables, await whoop_delivery(wclient, wearables)).written == 4

    server.on("GET", SLEEP, Answer(500, None))
    failing = await whoop_delivery(wclient, wearables)
    with pytest.raises(ProviderUnavailable):
        process(wearables, failing)
    # One try plus provider_api_max_retries, then the task's own backoff takes over.
    assert len(server.requests_to(SLEEP)) == 3 + 1 + wearables.provider_api_max_retries
    assert "500" in (event(wearables, failing).error or "")


async def test_google_health_reads_the_changed_days(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer
) -> None:
    user_id, _ = await new_user()
    link(wearables, user_id, "google-health", GOOGLE_USER)
    path = "/v4/users/me/dataTypes/daily-heart-rate-variability/dataPoints"
    point = {
        "name": f"users/{GOOGLE_USER}/dataTypes/daily-heart-rate-variability/dataPoints/1",
        "dailyHeartRateVariability": {
            "date": {"year": 2026, "month": 11, "day": 30},
            "averageHeartRateVariabilityMilliseconds": 41.5,
            "deepSleepRootMeanSquareOfSuccessiveDifferencesMilliseconds": 45.0,
        },
    }
    server.json(path, {"dataPoints": [point], "nextPageToken": ""})
    body = body_of(google_event())
    event_id = await deliver(
        wclient, wearables, "/v1/webhooks/google-health", body, google_headers(wearables)
    )

    assert process(wearables, event_id).written == 1

    [call] = server.requests_to(path)
    field = "daily_heart_rate_variability.date"
    assert call.query["filter"] == f'{field} >= "2026-11-30" AND {field} < "2026-12-02"'
    assert readings(wearables, user_id) == [
        ("google_health", "hrv_rmssd", 41.5, datetime(2026, 11, 30, tzinfo=UTC))
    ]


async def test_garmin_push_writes_only_for_linked_garmin_ids(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser
) -> None:
    user_id, _ = await new_user()
    other_id, _ = await new_user()
    link(wearables, user_id, "garmin", GARMIN_USER)
    push = garmin_push(stress=-1)  # -1: Garmin's "not enough data", rejected rather than read as calm
    stranger = garmin_push(user_id="someone-else")
    push["dailies"] += stranger["dailies"]
    secret = wearables.garmin_webhook_path_secret.get_secret_value()
    event_id = await deliver(wclient, wearables, f"/v1/webhooks/garmin/{secret}", body_of(push), {})

    result = process(wearables, event_id)

    assert result.rejected == 1
    assert readings(wearables, other_id) == []
    assert {kind for _, kind, _, _ in readings(wearables)} == {
        "steps",
        "resting_heart_rate",
        "sleep_duration",
        "sleep_deep",
        "sleep_light",
        "sleep_rem",
        "sleep_awake",
        "sleep_score",
        "deep_sleep_percent",
    }
    assert len(readings(wearables)) == len(readings(wearables, user_id)) == 9
    assert event(wearables, event_id).user_id == user_id


async def test_a_garmin_deregistration_revokes_the_connection(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser
) -> None:
    user_id, _ = await new_user()
    connection_id = link(wearables, user_id, "garmin", GARMIN_USER)
    secret = wearables.garmin_webhook_path_secret.get_secret_value()
    body = body_of({"deregistrations": [{"userId": GARMIN_USER, "userAccessToken": "t"}]})
    event_id = await deliver(wclient, wearables, f"/v1/webhooks/garmin/{secret}", body, {})

    process(wearables, event_id)

    row, _ = connection(wearables, connection_id)
    assert row.revoked_at is not None
    assert event(wearables, event_id).handled_at is not None

"""Each wearable provider's authenticity scheme at ``POST /v1/webhooks/{provider}``: valid deliveries are
stored verbatim once (202, then 200), forged, expired and future ones are 401 with nothing stored, an
unconfigured provider is 404, and Oura's GET handshake echoes the challenge only for our token."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import make_url

from app.core.config import Settings
from tests.support import app_client, running_app
from tests.wearables.payloads import (
    body_of,
    garmin_push,
    google_event,
    google_headers,
    oura_event,
    oura_headers,
    whoop_event,
    whoop_headers,
)
from tests.webhooks.terra import queued


def _events(settings: Settings) -> list[tuple[str, str, bytes, dict[str, Any]]]:
    dsn = make_url(settings.sync_database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT source, external_id, raw_body, headers FROM webhook_events").fetchall()
    return [(row[0], row[1], bytes(row[2]), row[3]) for row in rows]


def _signed(provider: str, settings: Settings, body: bytes, at: float | None = None) -> dict[str, str]:
    if provider == "whoop":
        return whoop_headers(settings, body, at=at)
    if provider == "oura":
        return oura_headers(settings, body, at=at)
    return google_headers(settings)


DOCUMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "whoop": whoop_event,
    "oura": oura_event,
    "google-health": google_event,
}


@pytest.mark.parametrize("provider", ["whoop", "oura", "google-health"])
async def test_valid_delivery_is_stored_once_and_enqueued_once(
    provider: str, wearables: Settings, wclient: httpx.AsyncClient
) -> None:
    body = body_of(DOCUMENTS[provider]())
    headers = _signed(provider, wearables, body)

    first = await wclient.post(f"/v1/webhooks/{provider}", content=body, headers=headers)
    again = await wclient.post(f"/v1/webhooks/{provider}", content=body, headers=headers)

    assert first.status_code == 202, first.text
    assert again.status_code == 200 and again.json()["duplicate"] is True
    [(source, _, raw, stored_headers)] = _events(wearables)
    assert (source, raw) == (provider, body)
    assert "authorization" not in stored_headers  # Google Health's echoed secret is never kept
    assert len(queued(wearables)) == 1


@pytest.mark.parametrize("provider", ["whoop", "oura"])
@pytest.mark.parametrize("skew", [-301, 301])
async def test_expired_or_future_timestamps_are_refused(
    provider: str, skew: int, wearables: Settings, wclient: httpx.AsyncClient
) -> None:
    body = body_of(DOCUMENTS[provider]())
    headers = _signed(provider, wearables, body, at=time.time() + skew)

    response = await wclient.post(f"/v1/webhooks/{provider}", content=body, headers=headers)

    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
    assert _events(wearables) == []


@pytest.mark.parametrize("provider", ["whoop", "oura"])
@pytest.mark.parametrize("timestamp", [b"9" * 400, b"\xb2"], ids=["400 digits", "superscript two"])
async def test_a_timestamp_no_clock_can_read_is_refused_not_a_500(
    provider: str, timestamp: bytes, wearables: Settings, wclient: httpx.AsyncClient
) -> None:
    # 400 digits overflowed the float conversion of the freshness check, and "\xb2" (latin-1 "²") passed
    # str.isdigit but not int() (issue 10: never a 5xx).
    body = body_of(DOCUMENTS[provider]())
    name = "x-whoop-signature-timestamp" if provider == "whoop" else "x-oura-timestamp"
    headers = {key.encode(): value.encode() for key, value in _signed(provider, wearables, body).items()}
    headers[name.encode()] = timestamp

    response = await wclient.post(f"/v1/webhooks/{provider}", content=body, headers=headers)

    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
    assert _events(wearables) == []


@pytest.mark.parametrize("provider", ["whoop", "oura", "google-health"])
async def test_forged_deliveries_are_refused(
    provider: str, wearables: Settings, wclient: httpx.AsyncClient
) -> None:
    body = body_of(DOCUMENTS[provider]())
    headers = _signed(provider, wearables, body)
    # The same signature over other bytes (a changed user id) and a signature made with another key.
    tampered = body.replace(b"1", b"2", 1)
    forger = wearables.model_copy(
        update={
            "whoop_client_secret": SecretStr("not-the-secret"),
            "oura_client_secret": SecretStr("not-the-secret"),
            "google_health_webhook_secret": SecretStr("not-the-secret"),
        }
    )
    attempts = [(body, _signed(provider, forger, body)), (body, {})]
    if provider != "google-health":  # a bearer secret covers no bytes: only the HMAC schemes bind the body
        attempts.append((tampered, headers))
    for content, sent in attempts:
        response = await wclient.post(f"/v1/webhooks/{provider}", content=content, headers=sent)
        assert response.status_code == 401, (sent, response.text)
    assert _events(wearables) == []


async def test_oura_signature_is_case_insensitive_hex(
    wearables: Settings, wclient: httpx.AsyncClient
) -> None:
    body = body_of(oura_event())
    headers = oura_headers(wearables, body)
    headers["x-oura-signature"] = headers["x-oura-signature"].lower()
    assert (await wclient.post("/v1/webhooks/oura", content=body, headers=headers)).status_code == 202


async def test_malformed_but_authentic_bodies_are_400_and_not_stored(
    wearables: Settings, wclient: httpx.AsyncClient
) -> None:
    # user_id as a string: WHOOP's is an integer, and types are never coerced.
    body = body_of({**whoop_event(), "user_id": "10129"})
    response = await wclient.post("/v1/webhooks/whoop", content=body, headers=whoop_headers(wearables, body))
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_payload"
    body = b"[1, 2]"
    response = await wclient.post("/v1/webhooks/oura", content=body, headers=oura_headers(wearables, body))
    assert response.status_code == 400
    assert _events(wearables) == []


async def test_google_health_verification_needs_the_secret(
    wearables: Settings, wclient: httpx.AsyncClient
) -> None:
    body = b'{"type": "verification"}'
    without = await wclient.post("/v1/webhooks/google-health", content=body)
    wrong = await wclient.post(
        "/v1/webhooks/google-health", content=body, headers=google_headers(wearables, "x")
    )
    right = await wclient.post("/v1/webhooks/google-health", content=body, headers=google_headers(wearables))
    assert (without.status_code, wrong.status_code, right.status_code) == (401, 401, 202)


async def test_garmin_needs_the_secret_path_segment(wearables: Settings, wclient: httpx.AsyncClient) -> None:
    secret = wearables.garmin_webhook_path_secret.get_secret_value()
    body = body_of(garmin_push())

    bare = await wclient.post("/v1/webhooks/garmin", content=body)
    wrong = await wclient.post("/v1/webhooks/garmin/not-the-secret", content=body)
    # A client sending the pseudo-header itself gains nothing: only the path sets it.
    smuggled = await wclient.post("/v1/webhooks/garmin", content=body, headers={":path-secret": secret})
    right = await wclient.post(f"/v1/webhooks/garmin/{secret}", content=body)
    again = await wclient.post(f"/v1/webhooks/garmin/{secret}", content=body)

    assert [r.status_code for r in (bare, wrong, smuggled, right, again)] == [401, 401, 401, 202, 200]
    [(source, external_id, raw, headers)] = _events(wearables)
    assert (source, raw) == ("garmin", body) and external_id.startswith("summaries:")
    assert secret not in str(headers)  # the path secret is not stored with the event


async def test_unconfigured_providers_are_404(settings: Settings, clean_database: str) -> None:
    # The shared test settings configure no wearable: every route stays closed, none open.
    async with running_app(settings) as app, app_client(app) as client:
        body = body_of(whoop_event())
        for path in ("/v1/webhooks/whoop", "/v1/webhooks/oura", "/v1/webhooks/google-health"):
            response = await client.post(path, content=body, headers={"authorization": "Bearer "})
            assert response.status_code == 404, (path, response.text)
        assert (await client.post("/v1/webhooks/garmin/anything", content=body)).status_code == 404
        assert (await client.get("/v1/webhooks/oura?verification_token=&challenge=x")).status_code == 404


async def test_oura_verification_challenge(wearables: Settings, wclient: httpx.AsyncClient) -> None:
    token = wearables.oura_verification_token.get_secret_value()
    ok = await wclient.get("/v1/webhooks/oura", params={"verification_token": token, "challenge": "c-123"})
    bad = await wclient.get("/v1/webhooks/oura", params={"verification_token": "nope", "challenge": "c-123"})
    none = await wclient.get("/v1/webhooks/whoop", params={"verification_token": token, "challenge": "c"})
    assert ok.status_code == 200 and ok.json() == {"challenge": "c-123"}
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_signature"
    assert none.status_code == 404

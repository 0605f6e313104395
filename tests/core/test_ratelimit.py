"""Rate limits: per token, per client IP without one, 429 + Retry-After in the error shape, Redis storage."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis
from fastapi import FastAPI
from pydantic import ValidationError

from app.core.config import Settings
from app.core.security import hash_token
from tests.support import admin_headers_for, broker_url, create_user_via_api, running_app

# The tests' own Redis database (RHYTHM_TEST_BROKER_URL), as a production deployment would share one.
REDIS_URL = broker_url()


@asynccontextmanager
async def limited_app(settings: Settings, **overrides: object) -> AsyncIterator[FastAPI]:
    async with running_app(settings.model_copy(update=overrides)) as app:
        yield app


@asynccontextmanager
async def client_from(app: FastAPI, ip: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://rhythm.test") as client:
        yield client


async def new_token(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    _, headers = await create_user_via_api(client, admin_headers_for(settings))
    return headers


def assert_refused(response: httpx.Response, scope: str, limit: str) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    error = response.json()["error"]
    assert error["code"] == "too_many_requests"
    assert error["details"] == {"scope": scope, "limit": limit, "retry_after": retry_after}
    assert f"retry in {retry_after} s" in error["message"]


async def test_token_limit_trips_with_429_and_retry_after(settings: Settings, clean_database: str) -> None:
    async with limited_app(settings, rate_limit_per_token="3/minute") as app, client_from(app) as client:
        headers = await new_token(client, settings)
        for _ in range(3):
            assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
        refused = await client.get("/v1/users/me", headers=headers)
        assert_refused(refused, "token", "3 per 1 minute")
        assert refused.headers["x-request-id"]  # still inside the request context middleware
        metrics = (await client.get("/metrics")).text
        assert 'rhythm_rate_limited_requests_total{scope="token"} 1.0' in metrics


async def test_two_tokens_have_separate_budgets(settings: Settings, clean_database: str) -> None:
    async with limited_app(settings, rate_limit_per_token="2/minute") as app, client_from(app) as client:
        alice = await new_token(client, settings)
        bob = await new_token(client, settings)
        for _ in range(2):
            assert (await client.get("/v1/users/me", headers=alice)).status_code == 200
        assert (await client.get("/v1/users/me", headers=alice)).status_code == 429
        # Same IP, other token: a full budget of its own.
        assert (await client.get("/v1/users/me", headers=bob)).status_code == 200
        assert (await client.get("/v1/users/me", headers=bob)).status_code == 200
        assert (await client.get("/v1/users/me", headers=bob)).status_code == 429


async def test_a_second_authorization_header_does_not_buy_a_new_budget(
    settings: Settings, clean_database: str
) -> None:
    async with limited_app(settings, rate_limit_per_token="2/minute") as app, client_from(app) as client:
        headers = await new_token(client, settings)
        for _ in range(3):
            # Authentication reads the first header; counting the second would mean a fresh key each time.
            decoy = ("Authorization", f"Bearer rhy_{secrets.token_urlsafe(32)}")
            response = await client.get("/v1/users/me", headers=[*headers.items(), decoy])
        assert response.status_code == 429


async def test_unauthenticated_requests_are_limited_per_ip(settings: Settings, clean_database: str) -> None:
    async with (
        limited_app(settings, rate_limit_per_ip="2/minute") as app,
        client_from(app, "198.51.100.7") as first,
        client_from(app, "198.51.100.8") as second,
    ):
        for _ in range(2):
            assert (await first.get("/openapi.json")).status_code == 200
        assert_refused(await first.get("/openapi.json"), "ip", "2 per 1 minute")
        # Any route without a token shares the IP's budget.
        assert (await first.get("/v1/users/me")).status_code == 429
        assert (await second.get("/openapi.json")).status_code == 200


async def test_probes_and_metrics_are_exempt(settings: Settings, clean_database: str) -> None:
    async with limited_app(settings, rate_limit_per_ip="1/minute") as app, client_from(app) as client:
        for _ in range(4):
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/readyz")).status_code != 429


async def test_signed_provider_webhooks_are_not_limited_per_ip(
    settings: Settings, clean_database: str
) -> None:
    async with limited_app(settings, rate_limit_per_ip="1/minute") as app, client_from(app) as client:
        # Unconfigured provider: 404 each time, never 429; the webhook's own signature check is its guard.
        for _ in range(4):
            assert (await client.post("/v1/webhooks/terra", content=b"{}")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 429


async def test_guessed_tokens_are_charged_to_the_ip(settings: Settings, clean_database: str) -> None:
    async with (
        limited_app(settings, rate_limit_per_ip="3/minute") as app,
        client_from(app, "203.0.113.5") as guesser,
        client_from(app, "203.0.113.6") as other,
    ):
        valid = await new_token(other, settings)
        # A fresh random token each time would otherwise get a fresh budget each time.
        for _ in range(3):
            guess = {"Authorization": f"Bearer rhy_{secrets.token_urlsafe(32)}"}
            assert (await guesser.get("/v1/users/me", headers=guess)).status_code == 401
        guess = {"Authorization": f"Bearer rhy_{secrets.token_urlsafe(32)}"}
        assert_refused(await guesser.get("/v1/users/me", headers=guess), "auth_failures", "3 per 1 minute")
        # Valid tokens used from other addresses are unaffected; failures from there count there only.
        assert (await other.get("/v1/users/me", headers=valid)).status_code == 200


async def test_disabled_means_no_limit(settings: Settings, clean_database: str) -> None:
    async with (
        limited_app(
            settings, rate_limit_enabled=False, rate_limit_per_token="1/minute", rate_limit_per_ip="1/minute"
        ) as app,
        client_from(app) as client,
    ):
        assert app.state.rate_limiter is None
        headers = await new_token(client, settings)
        for _ in range(5):
            assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
            assert (await client.get("/openapi.json")).status_code == 200


async def test_redis_storage_shares_budgets_between_processes(
    settings: Settings, clean_database: str
) -> None:
    limits = {"rate_limit_storage_url": REDIS_URL, "rate_limit_per_token": "3/minute"}
    async with (
        limited_app(settings, **limits) as first_app,
        limited_app(settings, **limits) as second_app,
        client_from(first_app) as first,
        client_from(second_app) as second,
    ):
        headers = await new_token(first, settings)
        token = headers["Authorization"].removeprefix("Bearer ")
        assert (await first.get("/v1/users/me", headers=headers)).status_code == 200
        assert (await first.get("/v1/users/me", headers=headers)).status_code == 200
        assert (await second.get("/v1/users/me", headers=headers)).status_code == 200
        # Two app instances, one count in Redis: the second instance refuses the fourth request.
        assert_refused(await second.get("/v1/users/me", headers=headers), "token", "3 per 1 minute")

    with redis.Redis.from_url(REDIS_URL) as client:
        keys = [key.decode() for key in client.scan_iter(match="LIMITS*", count=1000)]
    assert any(hash_token(token) in key for key in keys)
    assert not any(token in key for key in keys), "the raw token is a Redis key"


async def test_storage_outage_lets_requests_through(settings: Settings, clean_database: str) -> None:
    # Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    async with (
        limited_app(
            settings, rate_limit_storage_url="redis://127.0.0.1:9/0", rate_limit_per_token="1/minute"
        ) as app,
        client_from(app) as client,
    ):
        headers = await new_token(client, settings)
        for _ in range(3):
            assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert "rhythm_rate_limit_storage_errors_total 1.0" in metrics  # then backs off, not once per request


@pytest.mark.parametrize(
    "overrides",
    [
        {"rate_limit_per_token": "lots"},
        {"rate_limit_per_ip": "10/fortnight"},
        {"rate_limit_storage_url": "memcached://127.0.0.1:11211"},
    ],
)
def test_bad_settings_fail_at_start(overrides: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings(**overrides)  # type: ignore[arg-type]


def test_settings_accept_several_limits() -> None:
    settings = Settings(rate_limit_per_token="10/second;600/minute", rate_limit_storage_url="rediss://h:1/2")
    assert settings.rate_limit_per_token == "10/second;600/minute"

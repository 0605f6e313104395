"""Operational endpoints: liveness, readiness (with pluggable checks), Prometheus metrics, OpenAPI."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from app.core.config import Settings
from tests.support import app_client, running_app


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


async def test_probes_answer_head_as_get_without_listing_it(client: httpx.AsyncClient) -> None:
    """Monitors that probe with HEAD get the GET's status (not 405); the schema keeps one operation each."""
    for path in ("/healthz", "/readyz"):
        head, get = await client.head(path), await client.get(path)
        assert head.status_code == get.status_code == 200, (path, head.status_code)
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/healthz"]) == {"get"} and set(paths["/readyz"]) == {"get"}


async def test_readyz_checks_database_and_broker(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    # No beat runs in this test: reported, and only a degradation (the harness does not require a worker).
    assert body["status"] == "degraded"
    assert body["beat"]["alive"] is False and body["worker"]["alive"] is False
    # Features register more checks (e.g. "policy"); all of them passed.
    assert {"broker", "database"} <= set(body["checks"])
    assert all(body["checks"].values())


async def test_readyz_runs_registered_checks_and_names_failures(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def model_server_down() -> bool:
        raise ConnectionError("model server unreachable")

    async def slow() -> bool:
        await asyncio.sleep(60)
        return True

    app.state.readiness_checks["model_server"] = model_server_down
    app.state.readiness_checks["slow"] = slow
    response = await client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["failed"] == ["model_server", "slow"]
    checks = error["details"]["checks"]
    assert checks["model_server"] is False and checks["slow"] is False
    assert checks["broker"] is True and checks["database"] is True


async def test_readyz_reports_unreachable_broker_and_database(settings: Settings) -> None:
    broken = settings.model_copy(
        update={
            "broker_url": "redis://127.0.0.1:1/0",
            "database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        }
    )
    async with running_app(broken) as app, app_client(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    failed = response.json()["error"]["details"]["failed"]
    assert {"broker", "database"} <= set(failed)


async def test_metrics_use_route_templates(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    await client.delete("/v1/users/00000000-0000-4000-8000-000000000000", headers=admin_headers)
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'route="/v1/users/{user_id}"' in text
    assert 'route="/healthz"' in text
    assert "00000000-0000-4000-8000-000000000000" not in text


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_openapi_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/v1/users" in schema["paths"]

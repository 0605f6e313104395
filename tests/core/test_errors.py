"""Every 4xx/5xx answers ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter

from app.core.config import Settings
from tests.support import CreateUser, app_client, running_app


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


async def test_401_without_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users/me")
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_401_with_unknown_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users/me", headers={"Authorization": "Bearer rhy_not-a-real-token"})
    assert_error(response, 401, "unauthorized")


async def test_401_with_wrong_scheme(client: httpx.AsyncClient, settings: Settings) -> None:
    token = settings.admin_token.get_secret_value()
    response = await client.post("/v1/users", json={}, headers={"Authorization": f"Basic {token}"})
    assert_error(response, 401, "unauthorized")


async def test_403_user_on_admin_route(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, headers = await create_user()
    assert_error(await client.post("/v1/users", json={}, headers=headers), 403, "forbidden")


async def test_404_unknown_route(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/no/such/route"), 404, "not_found")


async def test_malformed_user_id_is_404_not_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # No user has that id, exactly as for a well-formed unknown one (issue 10).
    assert_error(await client.delete("/v1/users/not-a-uuid", headers=admin_headers), 404, "not_found")


async def test_delete_users_me_is_405_with_allow(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, headers = await create_user()
    response = await client.delete("/v1/users/me", headers=headers)
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in {method.strip() for method in response.headers["allow"].split(",")}


async def test_405_allow_lists_every_route_at_the_path(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    # /v1/users/me has a GET and a PATCH route; Starlette alone would name the first route's methods only.
    _, headers = await create_user()
    response = await client.put("/v1/users/me", headers=headers, json={})
    assert_error(response, 405, "method_not_allowed")
    assert {method.strip() for method in response.headers["allow"].split(",")} == {"GET", "PATCH"}


async def test_405_wrong_method(client: httpx.AsyncClient) -> None:
    assert_error(await client.put("/healthz"), 405, "method_not_allowed")


async def test_422_malformed_json(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post(
        "/v1/users", content=b"{not json", headers={**admin_headers, "content-type": "application/json"}
    )
    assert_error(response, 422, "validation_error")


async def test_422_unknown_field(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/v1/users", json={"timezone": "UTC", "admin": True}, headers=admin_headers)
    error = assert_error(response, 422, "validation_error")
    assert isinstance(error["details"], list) and error["details"][0]["loc"] == ["body", "admin"]


async def test_413_declared_content_length(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1024})
    async with running_app(small) as app, app_client(app) as client:
        response = await client.post(
            "/v1/users",
            content=b"{" + b" " * 2048 + b"}",
            headers={"Authorization": "Bearer x", "content-type": "application/json"},
        )
    assert_error(response, 413, "payload_too_large")


async def test_413_chunked_body_without_content_length(
    settings: Settings, admin_headers: dict[str, str], clean_database: str
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1024})

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"timezone": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'

    async with running_app(small) as app, app_client(app) as client:
        response = await client.post(
            "/v1/users", content=chunks(), headers={**admin_headers, "content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")
        # A body under the cap still works on the same app.
        ok = await client.post("/v1/users", json={"timezone": "UTC"}, headers=admin_headers)
        assert ok.status_code == 201


async def test_500_hides_internals(settings: Settings) -> None:
    async with running_app(settings) as app:
        router = APIRouter()

        @router.get("/boom")
        async def boom() -> None:
            raise RuntimeError("secret internal detail")

        app.include_router(router)
        async with app_client(app, raise_app_exceptions=False) as client:
            response = await client.get("/boom", headers={"X-Request-ID": "trace-me-500"})
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text
    assert error["details"] is None
    # The one id the client can quote to find the traceback in the logs.
    assert response.headers["x-request-id"] == "trace-me-500"

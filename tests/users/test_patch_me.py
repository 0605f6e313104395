"""``PATCH /v1/users/me``: a user changes their time zone; IANA names only, strict body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.users.schemas import iana_zone_names
from tests.support import CreateUser


async def test_user_changes_timezone(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    user_id, headers = await create_user(timezone="UTC")
    response = await client.patch("/v1/users/me", json={"timezone": "America/New_York"}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == str(user_id)
    assert body["timezone"] == "America/New_York"
    # Committed, not only echoed: a later request sees it.
    me = await client.get("/v1/users/me", headers=headers)
    assert me.json()["timezone"] == "America/New_York"
    assert me.json()["created_at"] == body["created_at"]


async def test_new_timezone_decides_the_slot(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, headers = await create_user(timezone="UTC")
    at = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0).isoformat()
    before = await client.post("/v1/recommend", json={"at": at}, headers=headers)
    assert before.status_code == 200, before.text
    assert before.json()["slot"] == "Morning"
    # 09:00 UTC is 23:00 on Kiritimati (UTC+14): the Night slot.
    await client.patch("/v1/users/me", json={"timezone": "Pacific/Kiritimati"}, headers=headers)
    after = await client.post("/v1/recommend", json={"at": at}, headers=headers)
    assert after.status_code == 200, after.text
    assert after.json()["slot"] == "Night"


async def test_other_users_are_untouched(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, alice = await create_user(timezone="Europe/Berlin")
    _, bob = await create_user(timezone="Asia/Tokyo")
    await client.patch("/v1/users/me", json={"timezone": "Australia/Sydney"}, headers=alice)
    assert (await client.get("/v1/users/me", headers=bob)).json()["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"timezone": 1}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),  # the server's zone, not a place
        ({"timezone": "Factory"}, "timezone"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "europe/berlin"}, "timezone"),  # IANA names are case-sensitive
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": "UTC", "user_id": "00000000-0000-0000-0000-000000000000"}, "user_id"),
    ],
)
async def test_bad_bodies_are_422(
    client: httpx.AsyncClient, create_user: CreateUser, body: dict[str, Any], field: str
) -> None:
    _, headers = await create_user(timezone="Europe/Berlin")
    response = await client.patch("/v1/users/me", json=body, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == ["body", field]
    assert (await client.get("/v1/users/me", headers=headers)).json()["timezone"] == "Europe/Berlin"


async def test_missing_body_is_422(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, headers = await create_user()
    response = await client.patch("/v1/users/me", headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_admin_token_has_no_me_to_change(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.patch("/v1/users/me", json={"timezone": "UTC"}, headers=admin_headers)
    assert response.status_code == 403


async def test_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.patch("/v1/users/me", json={"timezone": "UTC"})
    assert response.status_code == 401


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_iana_names_pass(name: str) -> None:
    assert name in iana_zone_names()


async def test_patch_is_documented(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/v1/users/me"]["patch"]
    assert "200" in operation["responses"]
    assert "422" in operation["responses"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/UserUpdate")
    assert schema["components"]["schemas"]["UserUpdate"]["additionalProperties"] is False

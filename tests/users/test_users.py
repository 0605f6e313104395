"""Users API: creation, me, export, deletion, and object-level authorization (BOLA)."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiToken, User
from tests.support import CreateUser


async def test_admin_creates_user_with_usable_token(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post("/v1/users", json={"timezone": "Europe/Berlin"}, headers=admin_headers)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user_id", "token"}
    me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["user_id"] == body["user_id"]
    assert me.json()["timezone"] == "Europe/Berlin"


async def test_create_user_without_body_defaults_to_utc(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post("/v1/users", headers=admin_headers)
    assert response.status_code == 201
    token = response.json()["token"]
    me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["timezone"] == "UTC"


async def test_invalid_timezone_is_422(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/v1/users", json={"timezone": "Mars/Olympus_Mons"}, headers=admin_headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == ["body", "timezone"]


async def test_user_token_cannot_create_users(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, headers = await create_user()
    response = await client.post("/v1/users", json={}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_admin_token_has_no_me(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.get("/v1/users/me", headers=admin_headers)
    assert response.status_code == 403


async def test_token_is_stored_only_as_hash(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    response = await client.post("/v1/users", json={}, headers=admin_headers)
    token = response.json()["token"]
    rows = (await db_session.scalars(select(ApiToken))).all()
    assert len(rows) == 1
    stored = rows[0]
    for column in ApiToken.__table__.columns:
        value = getattr(stored, column.key)
        assert token not in str(value), f"api_tokens.{column.key} holds the plaintext token"
    assert stored.prefix == token[: len(stored.prefix)]
    assert len(stored.prefix) < len(token) // 4


async def test_user_deletes_themself(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    user_id, headers = await create_user()
    response = await client.delete(f"/v1/users/{user_id}", headers=headers)
    assert response.status_code == 204
    # The token died with the user.
    assert (await client.get("/v1/users/me", headers=headers)).status_code == 401


async def test_admin_deletes_any_user_and_unknown_is_404(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    admin_headers: dict[str, str],
    db_session: AsyncSession,
) -> None:
    user_id, _ = await create_user()
    assert (await client.delete(f"/v1/users/{user_id}", headers=admin_headers)).status_code == 204
    assert await db_session.get(User, user_id) is None
    again = await client.delete(f"/v1/users/{user_id}", headers=admin_headers)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"


async def test_bola_other_users_delete_is_404_and_harmless(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    victim_id, victim_headers = await create_user()
    _, attacker_headers = await create_user()
    response = await client.delete(f"/v1/users/{victim_id}", headers=attacker_headers)
    assert response.status_code == 404
    # Same answer as for an ID that does not exist: the attacker learns nothing.
    missing = await client.delete(f"/v1/users/{uuid.uuid4()}", headers=attacker_headers)
    assert missing.status_code == 404
    assert missing.json() == response.json()
    assert (await client.get("/v1/users/me", headers=victim_headers)).status_code == 200


async def test_bola_me_endpoints_only_show_the_caller(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    a_id, a_headers = await create_user()
    b_id, b_headers = await create_user()
    me_a = (await client.get("/v1/users/me", headers=a_headers)).json()
    me_b = (await client.get("/v1/users/me", headers=b_headers)).json()
    assert (me_a["user_id"], me_b["user_id"]) == (str(a_id), str(b_id))
    export_b = (await client.get("/v1/users/me/export", headers=b_headers)).json()
    assert export_b["user"]["user_id"] == str(b_id)
    assert all(row["user_id"] == str(b_id) for rows in export_b["tables"].values() for row in rows)

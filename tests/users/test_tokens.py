"""``POST /v1/users/{user_id}/tokens``: token rotation by the user or the admin; every older token revoked."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import hash_token
from app.models import ApiToken
from tests.support import CreateUser


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_user_rotates_own_token(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    user_id, old = await create_user()
    response = await client.post(f"/v1/users/{user_id}/tokens", headers=old)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user_id"] == str(user_id)
    assert body["revoked_tokens"] == 1
    assert body["token"].startswith(body["prefix"])
    assert body["token"] != old["Authorization"].removeprefix("Bearer ")

    gone = await client.get("/v1/users/me", headers=old)
    assert gone.status_code == 401
    assert gone.json()["error"]["code"] == "unauthorized"
    me = await client.get("/v1/users/me", headers=bearer(body["token"]))
    assert me.status_code == 200
    assert me.json()["user_id"] == str(user_id)


async def test_new_token_is_stored_hashed(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, headers = await create_user()
    token = (await client.post(f"/v1/users/{user_id}/tokens", headers=headers)).json()["token"]
    rows = (await db_session.scalars(select(ApiToken).where(ApiToken.user_id == user_id))).all()
    assert len(rows) == 2
    active = [row for row in rows if row.revoked_at is None]
    assert len(active) == 1
    assert active[0].token_hash == hash_token(token)
    for row in rows:
        for column in ApiToken.__table__.columns:
            assert token not in str(getattr(row, column.key)), f"api_tokens.{column.key} holds the token"


async def test_admin_rotates_a_users_token(
    client: httpx.AsyncClient, create_user: CreateUser, admin_headers: dict[str, str]
) -> None:
    user_id, old = await create_user()
    response = await client.post(f"/v1/users/{user_id}/tokens", headers=admin_headers)
    assert response.status_code == 201
    assert (await client.get("/v1/users/me", headers=old)).status_code == 401
    assert (await client.get("/v1/users/me", headers=bearer(response.json()["token"]))).status_code == 200
    # The admin token is not a user token and is not revoked by rotating one.
    again = await client.post(f"/v1/users/{user_id}/tokens", headers=admin_headers)
    assert again.status_code == 201


async def test_every_earlier_token_is_revoked(
    client: httpx.AsyncClient, create_user: CreateUser, admin_headers: dict[str, str]
) -> None:
    user_id, first = await create_user()
    second = (await client.post(f"/v1/users/{user_id}/tokens", headers=admin_headers)).json()["token"]
    third = (await client.post(f"/v1/users/{user_id}/tokens", headers=bearer(second))).json()
    assert third["revoked_tokens"] == 1  # the first was already revoked by the second rotation
    for stale in (first, bearer(second)):
        assert (await client.get("/v1/users/me", headers=stale)).status_code == 401
    assert (await client.get("/v1/users/me", headers=bearer(third["token"]))).status_code == 200


async def test_user_cannot_rotate_another_users_token(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _, alice = await create_user()
    bob_id, bob = await create_user()
    response = await client.post(f"/v1/users/{bob_id}/tokens", headers=alice)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    # Bob's token still works, and Alice's too: nothing was rotated.
    assert (await client.get("/v1/users/me", headers=bob)).status_code == 200
    assert (await client.get("/v1/users/me", headers=alice)).status_code == 200


async def test_unknown_user_is_404(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post(f"/v1/users/{uuid.uuid4()}/tokens", headers=admin_headers)
    assert response.status_code == 404


async def test_without_token_is_401(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    user_id, _ = await create_user()
    response = await client.post(f"/v1/users/{user_id}/tokens")
    assert response.status_code == 401


async def test_concurrent_rotations_leave_one_active_token(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    admin_headers: dict[str, str],
    db_session: AsyncSession,
) -> None:
    user_id, _ = await create_user()
    responses = await asyncio.gather(
        *(client.post(f"/v1/users/{user_id}/tokens", headers=admin_headers) for _ in range(6))
    )
    assert [r.status_code for r in responses] == [201] * 6
    statement = select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    active = (await db_session.scalars(statement)).all()
    assert len(active) == 1
    # Rotations ran one after the other: together they revoked the first token and five of their own.
    assert sum(r.json()["revoked_tokens"] for r in responses) == 6


async def test_rotation_racing_deletion_never_500(
    client: httpx.AsyncClient, create_user: CreateUser, admin_headers: dict[str, str]
) -> None:
    for _ in range(3):
        user_id, _ = await create_user()
        rotate, delete = await asyncio.gather(
            client.post(f"/v1/users/{user_id}/tokens", headers=admin_headers),
            client.delete(f"/v1/users/{user_id}", headers=admin_headers),
        )
        assert delete.status_code == 204
        assert rotate.status_code in {201, 404}, rotate.text
        if rotate.status_code == 201:
            # Rotated before the deletion: the new token died with the user.
            me = await client.get("/v1/users/me", headers=bearer(rotate.json()["token"]))
            assert me.status_code == 401


async def test_rotation_is_documented(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/v1/users/{user_id}/tokens"]["post"]
    assert {"201", "401", "404", "429"} <= set(operation["responses"])
    ref = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/TokenPublic")
    assert "Retry-After" in operation["responses"]["429"]["headers"]

"""POST /v1/users with an ``Idempotency-Key``: a provisioning script that retries after a lost answer gets the
user and token it first created, not a second user. The key is the admin's (``user_id`` NULL): no user row
exists to own it before the request."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import IdempotencyKey, User
from domain import METER_NAMES
from tests.support import CreateUser


async def _users(session: AsyncSession) -> int:
    session.expire_all()
    return (await session.execute(select(func.count()).select_from(User))).scalar_one()


async def _keys(session: AsyncSession, key: str) -> list[uuid.UUID | None]:
    session.expire_all()
    statement = select(IdempotencyKey.user_id).where(IdempotencyKey.key == key)
    return list((await session.scalars(statement)).all())


async def test_a_retry_with_the_key_gets_the_first_user_and_creates_one(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    keyed = {**admin_headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"timezone": "Europe/Berlin"}
    first = await client.post("/v1/users", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    retries = [await client.post("/v1/users", json=body, headers=keyed) for _ in range(2)]
    assert all(r.status_code == 201 and r.json() == first.json() for r in retries)
    assert all(r.headers["idempotent-replayed"] == "true" for r in retries)
    assert await _users(db_session) == 1
    # The replayed token is the user's working token.
    me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {retries[-1].json()['token']}"})
    assert me.status_code == 200
    assert me.json()["user_id"] == first.json()["user_id"] and me.json()["timezone"] == "Europe/Berlin"
    # Stored for replay, but never in plain text: the table would otherwise hold a working credential.
    stored = (await db_session.scalars(select(IdempotencyKey.response_body))).one()
    assert first.json()["token"] not in str(stored)
    # Without a key every call is a new user, as before.
    plain = await client.post("/v1/users", json=body, headers=admin_headers)
    assert plain.status_code == 201 and plain.json()["user_id"] != first.json()["user_id"]
    assert await _users(db_session) == 2


async def test_the_key_with_another_body_is_422_and_creates_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    keyed = {**admin_headers, "Idempotency-Key": "provision-alice"}
    assert (await client.post("/v1/users", json={"timezone": "UTC"}, headers=keyed)).status_code == 201
    other = await client.post("/v1/users", json={"timezone": "Asia/Tokyo"}, headers=keyed)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await _users(db_session) == 1


async def test_concurrent_retries_with_one_key_create_one_user(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    keyed = {**admin_headers, "Idempotency-Key": "retry-storm"}
    responses = await asyncio.gather(*(client.post("/v1/users", headers=keyed) for _ in range(4)))
    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.json()["user_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 3
    assert await _users(db_session) == 1


async def test_a_users_key_and_the_admins_identical_key_do_not_collide(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_user: CreateUser,
    db_session: AsyncSession,
) -> None:
    user_id, headers = await create_user()
    key = {"Idempotency-Key": "same-key"}
    meters = {"meters": dict.fromkeys(METER_NAMES, 0.5)}
    mine = await client.post("/v1/recommend", json=meters, headers={**headers, **key})
    assert mine.status_code == 200, mine.text
    created = await client.post("/v1/users", headers={**admin_headers, **key})
    assert created.status_code == 201, created.text
    assert "idempotent-replayed" not in created.headers
    # And the other way round: the user's key still replays the user's own answer.
    again = await client.post("/v1/recommend", json=meters, headers={**headers, **key})
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == mine.json()
    assert sorted(await _keys(db_session, "same-key"), key=str) == sorted([user_id, None], key=str)


async def test_deleting_a_user_takes_their_keys_and_leaves_the_admins(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    created = await client.post("/v1/users", headers={**admin_headers, "Idempotency-Key": "provision-bob"})
    user_id = created.json()["user_id"]
    bearer = {"Authorization": f"Bearer {created.json()['token']}", "Idempotency-Key": "bobs-own"}
    assert (await client.post("/v1/recommend", headers=bearer)).status_code == 200
    assert (await client.delete(f"/v1/users/{user_id}", headers=admin_headers)).status_code == 204
    assert await _keys(db_session, "bobs-own") == []
    assert await _keys(db_session, "provision-bob") == [None]
    # A late retry of that creation says the user is gone (not a replay of a user that does not exist, nor a
    # second user).
    retry = await client.post("/v1/users", headers={**admin_headers, "Idempotency-Key": "provision-bob"})
    assert retry.status_code == 409
    assert retry.json()["error"]["code"] == "idempotency_user_deleted"
    assert await _users(db_session) == 0


async def test_a_stored_token_that_no_longer_decrypts_is_a_409_that_says_what_to_do(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    # What a replay meets after the server's secret key changed: the sealed token fails authentication.
    keyed = {**admin_headers, "Idempotency-Key": "before-key-change"}
    first = await client.post("/v1/users", headers=keyed)
    user_id = first.json()["user_id"]
    await db_session.execute(
        update(IdempotencyKey).values(
            response_body={"user_id": user_id, "token_sealed": "v1.AAAAAAAAAAAAAAAAAAAA"}
        )
    )
    await db_session.commit()
    retry = await client.post("/v1/users", headers=keyed)
    assert retry.status_code == 409
    assert retry.json()["error"]["code"] == "idempotency_answer_unavailable"
    assert f"/v1/users/{user_id}/tokens" in retry.json()["error"]["message"]
    assert await _users(db_session) == 1

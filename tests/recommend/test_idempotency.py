"""POST /v1/recommend with an ``Idempotency-Key``: a retry after a lost answer gets the first recommendation
again, and only one is logged (the shared ``app.core.idempotency``, as ``POST /v1/feedback`` uses it)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Recommendation
from domain import METER_NAMES
from tests.support import CreateUser

BODY = {"meters": dict(zip(METER_NAMES, (0.7, 0.6, 0.4, 0.5, 0.3), strict=True))}


async def _logged(session: AsyncSession, user_id: uuid.UUID) -> int:
    statement = select(func.count()).select_from(Recommendation).where(Recommendation.user_id == user_id)
    return (await session.execute(statement)).scalar_one()


async def test_a_retry_with_the_key_gets_the_first_recommendation_and_logs_one(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, headers = await create_user()
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/recommend", json=BODY, headers=keyed)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    retries = [await client.post("/v1/recommend", json=BODY, headers=keyed) for _ in range(3)]
    assert all(r.status_code == 200 and r.json() == first.json() for r in retries)
    assert all(r.headers["idempotent-replayed"] == "true" for r in retries)
    assert await _logged(db_session, user_id) == 1
    # Without a key every call is a new decision, as before.
    plain = await client.post("/v1/recommend", json=BODY, headers=headers)
    assert plain.json()["recommendation_id"] != first.json()["recommendation_id"]
    assert await _logged(db_session, user_id) == 2


async def test_the_key_with_another_body_is_422_and_logs_nothing(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, headers = await create_user()
    keyed = {**headers, "Idempotency-Key": "one-decision"}
    assert (await client.post("/v1/recommend", json=BODY, headers=keyed)).status_code == 200
    other = await client.post("/v1/recommend", json={**BODY, "exclude": ["SLEEP"]}, headers=keyed)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await _logged(db_session, user_id) == 1


async def test_concurrent_retries_with_one_key_log_one_recommendation(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, headers = await create_user()
    keyed = {**headers, "Idempotency-Key": "retry-storm"}
    responses = await asyncio.gather(*(client.post("/v1/recommend", headers=keyed) for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert len({r.json()["recommendation_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 3
    assert await _logged(db_session, user_id) == 1


async def test_keys_are_scoped_per_user(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, alice = await create_user()
    _, bob = await create_user()
    key = {"Idempotency-Key": "same-key"}
    a = await client.post("/v1/recommend", json=BODY, headers={**alice, **key})
    b = await client.post("/v1/recommend", json=BODY, headers={**bob, **key})
    assert a.status_code == b.status_code == 200
    assert "idempotent-replayed" not in b.headers
    assert a.json()["recommendation_id"] != b.json()["recommendation_id"]

"""POST /v1/feedback: rewards, BOLA, conflicts, the feedback window and Idempotency-Key semantics."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Feedback, IdempotencyKey, Recommendation
from tests.support import CreateUser


async def _recommendation(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/v1/recommend", headers=headers)
    assert response.status_code == 200, response.text
    recommendation_id: str = response.json()["recommendation_id"]
    return recommendation_id


async def _feedback_rows(session: AsyncSession, recommendation_id: str) -> int:
    statement = (
        select(func.count())
        .select_from(Feedback)
        .where(Feedback.recommendation_id == uuid.UUID(recommendation_id))
    )
    return (await session.execute(statement)).scalar_one()


@pytest.mark.parametrize(("answer", "reward"), [("accepted", 1), ("ignored", -1), ("rescheduled", -1)])
async def test_feedback_returns_the_reward_and_stores_it(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession, answer: str, reward: int
) -> None:
    _, headers = await create_user()
    recommendation_id = await _recommendation(client, headers)
    response = await client.post(
        "/v1/feedback", json={"recommendation_id": recommendation_id, "response": answer}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"recommendation_id": recommendation_id, "response": answer, "reward": reward}
    row = (
        await db_session.execute(
            select(Feedback).where(Feedback.recommendation_id == uuid.UUID(recommendation_id))
        )
    ).scalar_one()
    assert (row.response.value, row.reward) == (answer, reward)


async def test_rescheduled_to_is_stored_and_only_allowed_with_rescheduled(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    recommendation_id = await _recommendation(client, headers)
    body = {"recommendation_id": recommendation_id, "rescheduled_to": "2026-11-24T18:00:00+01:00"}
    wrong = await client.post("/v1/feedback", json={**body, "response": "accepted"}, headers=headers)
    assert wrong.status_code == 422
    assert "rescheduled_to" in wrong.json()["error"]["details"][0]["msg"]
    naive = {**body, "response": "rescheduled", "rescheduled_to": "2026-11-24T18:00:00"}
    assert (await client.post("/v1/feedback", json=naive, headers=headers)).status_code == 422
    ok = await client.post("/v1/feedback", json={**body, "response": "rescheduled"}, headers=headers)
    assert ok.status_code == 200, ok.text
    row = (await db_session.execute(select(Feedback))).scalar_one()
    assert row.rescheduled_to is not None and row.rescheduled_to.isoformat() == "2026-11-24T17:00:00+00:00"


async def test_another_users_recommendation_is_404_and_untouched(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, alice = await create_user()
    _, mallory = await create_user()
    recommendation_id = await _recommendation(client, alice)
    body = {"recommendation_id": recommendation_id, "response": "ignored"}
    response = await client.post("/v1/feedback", json=body, headers=mallory)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    # The same with a key: still 404, and nothing stored.
    keyed = await client.post("/v1/feedback", json=body, headers={**mallory, "Idempotency-Key": "k1"})
    assert keyed.status_code == 404
    assert await _feedback_rows(db_session, recommendation_id) == 0
    assert (await db_session.execute(select(func.count()).select_from(IdempotencyKey))).scalar_one() == 0
    # Alice can still answer her own recommendation.
    assert (await client.post("/v1/feedback", json=body, headers=alice)).status_code == 200


async def test_unknown_recommendation_is_404(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, headers = await create_user()
    body = {"recommendation_id": str(uuid.uuid4()), "response": "accepted"}
    assert (await client.post("/v1/feedback", json=body, headers=headers)).status_code == 404


async def test_same_answer_again_is_200_a_different_one_is_409(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    recommendation_id = await _recommendation(client, headers)
    body = {"recommendation_id": recommendation_id, "response": "accepted"}
    first = await client.post("/v1/feedback", json=body, headers=headers)
    again = await client.post("/v1/feedback", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    changed = await client.post("/v1/feedback", json={**body, "response": "ignored"}, headers=headers)
    assert changed.status_code == 409
    assert changed.json()["error"] == {
        "code": "feedback_conflict",
        "message": "This recommendation already has a different answer",
        "details": {"response": "accepted"},
    }
    assert await _feedback_rows(db_session, recommendation_id) == 1


async def test_concurrent_different_answers_store_exactly_one(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    recommendation_id = await _recommendation(client, headers)
    answers = ["accepted", "ignored", "accepted", "rescheduled"]
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/feedback", json={"recommendation_id": recommendation_id, "response": a}, headers=headers
            )
            for a in answers
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 409} and 200 in codes
    assert await _feedback_rows(db_session, recommendation_id) == 1
    stored = (await db_session.execute(select(Feedback.response))).scalar_one().value
    assert all(r.status_code == 200 for r, a in zip(responses, answers, strict=True) if a == stored)


async def test_feedback_after_the_window_is_410(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    recommendation_id = await _recommendation(client, headers)
    window = client._transport.app.state.settings.feedback_window  # type: ignore[attr-defined]
    past = datetime.now(UTC) - window - timedelta(minutes=1)
    await db_session.execute(
        update(Recommendation)
        .where(Recommendation.id == uuid.UUID(recommendation_id))
        .values(created_at=past, at=past)
    )
    await db_session.commit()
    body = {"recommendation_id": recommendation_id, "response": "accepted"}
    response = await client.post("/v1/feedback", json=body, headers=headers)
    assert response.status_code == 410, response.text
    assert response.json()["error"]["code"] == "feedback_window_closed"
    assert await _feedback_rows(db_session, recommendation_id) == 0


async def test_feedback_just_inside_the_window_is_accepted(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    recommendation_id = await _recommendation(client, headers)
    window = client._transport.app.state.settings.feedback_window  # type: ignore[attr-defined]
    past = datetime.now(UTC) - window + timedelta(minutes=1)
    await db_session.execute(
        update(Recommendation)
        .where(Recommendation.id == uuid.UUID(recommendation_id))
        .values(created_at=past, at=past)
    )
    await db_session.commit()
    body = {"recommendation_id": recommendation_id, "response": "accepted"}
    assert (await client.post("/v1/feedback", json=body, headers=headers)).status_code == 200


async def test_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    recommendation_id = await _recommendation(client, headers)
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"recommendation_id": recommendation_id, "response": "accepted"}
    first = await client.post("/v1/feedback", json=body, headers=keyed)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    # Same body, keys in another order: a retry.
    retry = await client.post(
        "/v1/feedback", json={"response": "accepted", "recommendation_id": recommendation_id}, headers=keyed
    )
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert await _feedback_rows(db_session, recommendation_id) == 1
    # Same key, another body: the client's mistake.
    other = await client.post("/v1/feedback", json={**body, "response": "ignored"}, headers=keyed)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


async def test_concurrent_retries_with_one_key_get_one_answer(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    recommendation_id = await _recommendation(client, headers)
    keyed = {**headers, "Idempotency-Key": "retry-storm"}
    body = {"recommendation_id": recommendation_id, "response": "ignored"}
    responses = await asyncio.gather(
        *(client.post("/v1/feedback", json=body, headers=keyed) for _ in range(5))
    )
    assert [r.status_code for r in responses] == [200] * 5
    assert all(r.json() == responses[0].json() for r in responses)
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 4
    assert await _feedback_rows(db_session, recommendation_id) == 1


async def test_idempotency_keys_are_scoped_per_user(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _, alice = await create_user()
    _, bob = await create_user()
    alice_rec = await _recommendation(client, alice)
    bob_rec = await _recommendation(client, bob)
    key = {"Idempotency-Key": "same-key"}
    a = await client.post(
        "/v1/feedback",
        json={"recommendation_id": alice_rec, "response": "accepted"},
        headers={**alice, **key},
    )
    b = await client.post(
        "/v1/feedback", json={"recommendation_id": bob_rec, "response": "ignored"}, headers={**bob, **key}
    )
    assert (a.status_code, b.status_code) == (200, 200)
    assert b.json() == {"recommendation_id": bob_rec, "response": "ignored", "reward": -1}
    assert "idempotent-replayed" not in b.headers


async def test_an_expired_key_is_reclaimed(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    first_rec = await _recommendation(client, headers)
    second_rec = await _recommendation(client, headers)
    keyed = {**headers, "Idempotency-Key": "reused-later"}
    first = {"recommendation_id": first_rec, "response": "accepted"}
    assert (await client.post("/v1/feedback", json=first, headers=keyed)).status_code == 200
    await db_session.execute(
        update(IdempotencyKey).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db_session.commit()
    second = {"recommendation_id": second_rec, "response": "ignored"}
    response = await client.post("/v1/feedback", json=second, headers=keyed)
    assert response.status_code == 200, response.text
    assert response.json()["reward"] == -1
    assert "idempotent-replayed" not in response.headers


async def test_a_failed_request_stores_no_key(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    keyed = {**headers, "Idempotency-Key": "first-try-failed"}
    missing = {"recommendation_id": str(uuid.uuid4()), "response": "accepted"}
    assert (await client.post("/v1/feedback", json=missing, headers=keyed)).status_code == 404
    # The key was not consumed by the failure: it works for a corrected request.
    recommendation_id = await _recommendation(client, headers)
    fixed = {"recommendation_id": recommendation_id, "response": "accepted"}
    assert (await client.post("/v1/feedback", json=fixed, headers=keyed)).status_code == 200


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "non-ascii-ü"])
async def test_malformed_idempotency_keys_are_422(
    client: httpx.AsyncClient, create_user: CreateUser, key: str
) -> None:
    _, headers = await create_user()
    recommendation_id = await _recommendation(client, headers)
    body = {"recommendation_id": recommendation_id, "response": "accepted"}
    # Bytes: httpx sends them as they are (a str header must be ASCII).
    raw_headers = [(b"authorization", headers["Authorization"].encode()), (b"idempotency-key", key.encode())]
    response = await client.post("/v1/feedback", json=body, headers=raw_headers)
    assert response.status_code == 422, response.text

"""The lock order that keeps a user's deletion and their own requests from deadlocking on Postgres (issue 10).

CI once saw ``deadlock detected`` (a 500) in test_delete_race.py: a feedback insert's foreign-key checks had
locked the recommendation and waited for the user row, which the deletion held while its cascade waited for
that recommendation. Every path must lock the user row before the user's own rows, as the deletion does. These
tests hold one lock by hand in a second transaction, let the real request block behind it, then check with
``NOWAIT`` that the blocked request holds nothing the other side needs next: deterministic where the
concurrent test only catches the interleaving now and then.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

WAIT_SECONDS = 15.0


async def _wait_until_blocked(app: FastAPI, task: asyncio.Task[httpx.Response]) -> None:
    """Until a session of this database waits on a lock (the request behind our hand-held lock)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    async with app.state.db.engine.connect() as probe:
        while asyncio.get_running_loop().time() < deadline:
            assert not task.done(), f"the request did not wait for the lock: {task.result().status_code}"
            if (await probe.scalar(query)) >= 1:
                return
            await probe.rollback()
            await asyncio.sleep(0.02)
    raise AssertionError("the request never blocked on the held lock")


async def _nowait(connection: AsyncConnection, sql: str, **params: object) -> None:
    """Run a ``… NOWAIT`` lock statement; a lock held by the blocked request fails it (55P03) — the bug."""
    await connection.execute(text(sql), params)


async def test_feedback_waits_for_the_user_row_before_locking_the_recommendation(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    user_id, headers = await _user(client, admin_headers)
    response = await client.post("/v1/recommend", json={}, headers=headers)
    assert response.status_code == 200, response.text
    recommendation_id = uuid.UUID(response.json()["recommendation_id"])

    async with app.state.db.engine.connect() as deletion:
        # The deletion's first step: the user row.
        await deletion.execute(text("SELECT id FROM users WHERE id = :u FOR UPDATE"), {"u": user_id})
        feedback = asyncio.create_task(
            client.post(
                "/v1/feedback",
                json={"recommendation_id": str(recommendation_id), "response": "accepted"},
                headers=headers,
            )
        )
        await _wait_until_blocked(app, feedback)
        # Its cascade's next step: the recommendation, which the blocked feedback must not hold.
        await _nowait(
            deletion, "SELECT id FROM recommendations WHERE id = :r FOR UPDATE NOWAIT", r=recommendation_id
        )
        await deletion.execute(text("DELETE FROM users WHERE id = :u"), {"u": user_id})
        await deletion.commit()
    answer = await asyncio.wait_for(feedback, WAIT_SECONDS)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["message"] == "Token no longer valid: its user was deleted"


async def test_a_request_does_not_hold_its_token_row_while_it_waits_for_the_user_row(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    user_id, headers = await _user(client, admin_headers)
    async with app.state.db.engine.connect() as setup:
        # Stale stamp: authentication will write last_used_at in this request.
        stale = text("UPDATE api_tokens SET last_used_at = NULL WHERE user_id = :u")
        await setup.execute(stale, {"u": user_id})
        await setup.commit()
    async with app.state.db.engine.connect() as deletion:
        await deletion.execute(text("SELECT id FROM users WHERE id = :u FOR UPDATE"), {"u": user_id})
        recommend = asyncio.create_task(client.post("/v1/recommend", json={}, headers=headers))
        await _wait_until_blocked(app, recommend)
        # The cascade's next step: the tokens, which the blocked request must not hold.
        await _nowait(deletion, "SELECT id FROM api_tokens WHERE user_id = :u FOR UPDATE NOWAIT", u=user_id)
        await deletion.execute(text("DELETE FROM users WHERE id = :u"), {"u": user_id})
        await deletion.commit()
    answer = await asyncio.wait_for(recommend, WAIT_SECONDS)
    assert answer.status_code == 401, answer.text


async def _user(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> tuple[uuid.UUID, dict[str, str]]:
    response = await client.post("/v1/users", json={"timezone": "UTC"}, headers=admin_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    return uuid.UUID(body["user_id"]), {"Authorization": f"Bearer {body['token']}"}

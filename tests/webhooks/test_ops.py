"""``/v1/ops/webhook-events`` through the real app on Postgres: admin only, filters, a keyset cursor that
stays stable while events arrive, no stored bodies or headers, and replay enqueued after commit (no worker
here: the message must wait on the ``ingest`` queue under this test's key prefix)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.tasks import PROCESS_WEBHOOK_EVENT
from app.models import WebhookEvent
from app.models.base import utcnow
from tests.support import admin_headers_for, app_client, create_user_via_api, running_app
from tests.webhooks.terra import (
    URL,
    body_of,
    daily_event,
    purge_broker,
    queued,
    signed_headers,
)

EVENTS = "/v1/ops/webhook-events"
FIELDS = {
    "id",
    "source",
    "external_id",
    "user_id",
    "received_at",
    "handled_at",
    "attempts",
    "error",
    "status",
}

Ops = tuple[Settings, httpx.AsyncClient, AsyncSession]


@pytest.fixture
async def ops(terra: Settings, clean_database: str) -> AsyncIterator[Ops]:
    async with running_app(terra) as app, app_client(app) as client, app.state.db.sessionmaker() as session:
        yield terra, client, session


async def deliver(ops: Ops, trace: str) -> uuid.UUID:
    """One real signed delivery through the inbox; returns the stored event's id."""
    settings, client, db = ops
    body = body_of(daily_event(uuid.uuid4()))
    response = await client.post(URL, content=body, headers=signed_headers(settings, body, trace=trace))
    assert response.status_code == 202, response.text
    db.expire_all()
    event_id = await db.scalar(
        WebhookEvent.__table__.select()
        .with_only_columns(WebhookEvent.id)
        .where(WebhookEvent.external_id == f"trace:{trace}")
    )
    assert isinstance(event_id, uuid.UUID)
    return event_id


async def arrange(db: AsyncSession, event_id: uuid.UUID, **values: Any) -> None:
    await db.execute(update(WebhookEvent).where(WebhookEvent.id == event_id).values(**values))
    await db.commit()


async def listing(ops: Ops, **params: Any) -> httpx.Response:
    settings, client, _ = ops
    return await client.get(EVENTS, params=params, headers=admin_headers_for(settings))


async def test_only_the_admin_token_may_look_or_replay(ops: Ops) -> None:
    settings, client, _ = ops
    event_id = await deliver(ops, "a")
    _, user_headers = await create_user_via_api(client, admin_headers_for(settings))
    replay = f"{EVENTS}/{event_id}/replay"

    for response in (
        await client.get(EVENTS, headers=user_headers),
        await client.post(replay, headers=user_headers),
    ):
        assert response.status_code == 403, response.text
        assert set(response.json()["error"]) == {"code", "message", "details"}
    assert (await client.get(EVENTS)).status_code == 401
    assert (await client.post(replay)).status_code == 401
    assert len(queued(settings)) == 1, "a refused replay enqueued nothing"


async def test_status_and_source_filters_and_no_bodies_or_headers(ops: Ops) -> None:
    _, _, db = ops
    pending, handled, failed = [await deliver(ops, name) for name in ("pending", "handled", "failed")]
    await arrange(db, handled, handled_at=utcnow(), attempts=1)
    await arrange(db, failed, error="UnmappableEvent: data for a user we do not have", attempts=3)

    everything = await listing(ops)
    assert everything.status_code == 200, everything.text
    items = everything.json()["items"]
    assert [item["id"] for item in items] == [str(failed), str(handled), str(pending)]  # newest first
    assert all(set(item) == FIELDS for item in items)
    assert "raw_body" not in everything.text and "terra-signature" not in everything.text
    by_status = {
        status: [item["id"] for item in (await listing(ops, status=status)).json()["items"]]
        for status in ("pending", "handled", "failed")
    }
    assert by_status == {"pending": [str(pending)], "handled": [str(handled)], "failed": [str(failed)]}
    [failed_item] = (await listing(ops, status="failed")).json()["items"]
    assert (failed_item["attempts"], failed_item["error"]) == (
        3,
        "UnmappableEvent: data for a user we do not have",
    )
    assert (await listing(ops, source="terra")).json()["items"] == items
    assert (await listing(ops, source="oura")).json() == {"items": [], "next_cursor": None}


async def test_the_cursor_walks_every_event_once_newest_first_even_as_new_ones_arrive(ops: Ops) -> None:
    _, _, db = ops
    ids = [await deliver(ops, f"e{i}") for i in range(5)]
    # A burst: three events in the same microsecond, so the id must break the tie for a stable order.
    same = utcnow() - timedelta(minutes=1)
    for event_id in ids[1:4]:
        await arrange(db, event_id, received_at=same)

    seen: list[str] = []
    first = await listing(ops, limit=2)
    assert first.status_code == 200, first.text
    page = first.json()
    seen += [item["id"] for item in page["items"]]
    newcomer = await deliver(ops, "late")  # arrives mid-walk: newer than everything, so not on later pages
    while page["next_cursor"] is not None:
        response = await listing(ops, limit=2, cursor=page["next_cursor"])
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]

    tied = sorted((str(i) for i in ids[1:4]), reverse=True)
    assert seen == [str(ids[4]), str(ids[0]), *tied]
    assert str(newcomer) not in seen
    assert len(seen) == len(set(seen)) == 5
    # Any well-formed position is a valid cursor: before the epoch's first microsecond there is nothing.
    assert (await listing(ops, cursor="0_" + "0" * 32)).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"status": "lost"}, 422),
        ({"limit": 0}, 422),
        ({"limit": 201}, 422),
        ({"limit": "ten"}, 422),
        ({"limit": "1.5"}, 422),
        ({"source": "Not A Provider!"}, 422),
        ({"cursor": "not-a-cursor"}, 422),
        ({"cursor": "1764547200000000_" + "g" * 32}, 422),
        ({"cursor": "1" * 18 + "_" + "0" * 32}, 422),  # 18 digits would leave datetime's range
    ],
)
async def test_bad_queries_are_clear_client_errors(ops: Ops, params: dict[str, Any], status: int) -> None:
    response = await listing(ops, **params)
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"code", "message", "details"}


async def test_replay_enqueues_after_commit_and_answers_the_event(ops: Ops) -> None:
    settings, client, _ = ops
    event_id = await deliver(ops, "again")
    purge_broker(settings)  # the delivery's own message: what is left after this is the replay's

    response = await client.post(f"{EVENTS}/{event_id}/replay", headers=admin_headers_for(settings))

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == FIELDS
    assert (body["id"], body["status"], body["attempts"]) == (str(event_id), "pending", 0)
    assert [(m["task"], m["argsrepr"]) for m in queued(settings)] == [
        (PROCESS_WEBHOOK_EVENT, f"['{event_id}']")
    ]


@pytest.mark.parametrize("event_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_replaying_an_unknown_event_is_404_and_enqueues_nothing(ops: Ops, event_id: str) -> None:
    settings, client, _ = ops
    response = await client.post(f"{EVENTS}/{event_id}/replay", headers=admin_headers_for(settings))
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert queued(settings) == []


async def test_the_routes_are_in_the_openapi_document(ops: Ops) -> None:
    _, client, _ = ops
    paths = (await client.get("/openapi.json")).json()["paths"]
    listed = paths[EVENTS]["get"]
    replay = paths[EVENTS + "/{event_id}/replay"]["post"]
    assert {"200", "401", "403"} <= set(listed["responses"])
    assert {"202", "401", "403", "404"} <= set(replay["responses"])
    assert {p["name"] for p in listed["parameters"]} == {"status", "source", "limit", "cursor"}

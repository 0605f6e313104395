"""``GET /v1/users/me/calendar-events`` and ``PUT …/{id}/action``: scoped to the caller, bounded ranges,
corrections remembered for the series and identical titles, also by later syncs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from googleapiclient.http import HttpMockSequence

from app.calendar import sync
from app.core.config import Settings
from app.core.db import task_session
from app.models.base import utcnow
from tests.calendar.google import event, instance, linked_account, ok, page
from tests.support import admin_headers_for, app_client, create_user_via_api, running_app

URL = "/v1/users/me/calendar-events"
START = (datetime.now(UTC) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)


@pytest.fixture
async def client(google: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(google) as app, app_client(app) as http:
        yield http


def _sync(settings: Settings, calendar_id: uuid.UUID, items: list[dict[str, Any]], token: str = "s") -> None:
    with task_session(settings.sync_database_url) as session:
        sync.sync_calendar(
            session,
            settings,
            calendar_id,
            utcnow(),
            http=HttpMockSequence([ok(page(items, sync_token=token))]),
        )


async def _account(settings: Settings, client: httpx.AsyncClient) -> tuple[dict[str, str], uuid.UUID]:
    user_id, headers = await create_user_via_api(client, admin_headers_for(settings), "UTC")
    with task_session(settings.sync_database_url) as session:
        _, _, calendar = linked_account(session, settings, user_id=user_id)
        return headers, calendar.id


def _range(days: int = 14) -> dict[str, str]:
    return {"from": (START - timedelta(days=1)).isoformat(), "to": (START + timedelta(days=days)).isoformat()}


async def test_list_and_correct(google: Settings, client: httpx.AsyncClient) -> None:
    headers, calendar_id = await _account(google, client)
    _sync(
        google,
        calendar_id,
        [
            instance("choir", "Chorprobe St. Marien", START),
            instance("choir", "Chorprobe St. Marien", START + timedelta(days=7)),
            event("oneoff", "chorprobe st. marien!", START + timedelta(days=3)),
            event("gym", "Gym", START + timedelta(hours=8), 90),
        ],
    )
    listing = await client.get(URL, params=_range(), headers=headers)
    assert listing.status_code == 200, listing.text
    items = listing.json()["items"]
    assert [i["title"] for i in items][:1] == ["Chorprobe St. Marien"]
    gym = next(i for i in items if i["title"] == "Gym")
    assert gym["action"] == "EXERCISE" and gym["source"] == "rule" and 0 < gym["confidence"] <= 1
    assert gym["slots"] == [{"date": START.date().isoformat(), "slot": "EVENING"}]

    first = next(i for i in items if i["title"] == "Chorprobe St. Marien")
    corrected = await client.put(f"{URL}/{first['id']}/action", json={"action": "ME_TIME"}, headers=headers)
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["action"] == "ME_TIME" and corrected.json()["source"] == "user"

    after = {i["id"]: i for i in (await client.get(URL, params=_range(), headers=headers)).json()["items"]}
    choir = [i for i in after.values() if "chorprobe" in (i["title"] or "").lower()]
    assert len(choir) == 3 and all(i["action"] == "ME_TIME" and i["source"] == "user" for i in choir)
    assert after[gym["id"]]["action"] == "EXERCISE"

    # The next instance of the series, synced later, keeps the user's verdict.
    _sync(
        google,
        calendar_id,
        [instance("choir", "Chorprobe St. Marien", START + timedelta(days=14, hours=-2))],
        "s2",
    )
    later = (await client.get(URL, params=_range(15), headers=headers)).json()["items"]
    assert len([i for i in later if i["action"] == "ME_TIME"]) == 4

    # "Not an action" is a correction too.
    cleared = await client.put(f"{URL}/{gym['id']}/action", json={"action": None}, headers=headers)
    assert cleared.status_code == 200 and cleared.json()["action"] is None


async def test_bad_requests_and_other_users(google: Settings, client: httpx.AsyncClient) -> None:
    headers, calendar_id = await _account(google, client)
    other_headers, _ = await _account(google, client)
    _sync(google, calendar_id, [event("gym", "Gym", START)])
    [gym] = (await client.get(URL, params=_range(), headers=headers)).json()["items"]

    assert (await client.get(URL, params=_range(), headers=other_headers)).json()["items"] == []
    stolen = await client.put(f"{URL}/{gym['id']}/action", json={"action": "SLEEP"}, headers=other_headers)
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "not_found"
    assert (
        await client.put(f"{URL}/{uuid.uuid4()}/action", json={"action": "SLEEP"}, headers=headers)
    ).status_code == 404

    for body in ({"action": "NAPPING"}, {"action": 3}, {}, {"action": "SLEEP", "extra": 1}):
        response = await client.put(f"{URL}/{gym['id']}/action", json=body, headers=headers)
        assert response.status_code == 422, body
        assert set(response.json()["error"]) == {"code", "message", "details"}
    wide = {"from": START.isoformat(), "to": (START + timedelta(days=63)).isoformat()}
    backwards = {"from": START.isoformat(), "to": (START - timedelta(hours=1)).isoformat()}
    for params in (
        {},
        {"from": START.isoformat()},
        wide,
        backwards,
        {"from": "yesterday", "to": START.isoformat()},
    ):
        response = await client.get(URL, params=params, headers=headers)
        assert response.status_code == 422, params
    assert (await client.get(URL, params=_range())).status_code == 401
    unchanged = (await client.get(URL, params=_range(), headers=headers)).json()["items"]
    assert unchanged[0]["action"] == "EXERCISE"

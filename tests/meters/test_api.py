"""``GET /v1/users/me/meters``: own snapshots only, bounded times, a stable cursor, missing as null."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MeterSnapshot
from tests.core.test_errors import assert_error
from tests.support import CreateUser

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
URL = "/v1/users/me/meters"


def _snapshot(user_id: uuid.UUID, hours: int, vitality: float | None) -> MeterSnapshot:
    return MeterSnapshot(
        user_id=user_id,
        taken_at=T0 + timedelta(hours=hours),
        source="bridge",
        engine_version="meters/1",
        provenance={"engine": "meters/1", "missing": [] if vitality is not None else ["vitality"]},
        vitality=vitality,
        cognition=0.4,
        progress=None,
        serenity=0.6,
        connection=0.7,
        vitality_confidence=0.0 if vitality is None else 0.8,
        cognition_confidence=0.5,
        progress_confidence=0.0,
        serenity_confidence=0.9,
        connection_confidence=0.3,
    )


async def test_lists_own_snapshots_newest_first_with_values_confidences_and_provenance(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, headers = await create_user()
    other_id, other_headers = await create_user()
    db_session.add_all([_snapshot(user_id, h, 0.1 * h if h else None) for h in range(5)])
    db_session.add(_snapshot(other_id, 1, 0.9))
    await db_session.commit()

    response = await client.get(URL, headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["meters"]["vitality"] for item in items[:-1]] == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert items[-1]["meters"]["vitality"] is None
    oldest = items[-1]
    assert oldest["missing"] == ["vitality", "progress"]
    assert oldest["confidences"] == {
        "vitality": 0.0,
        "cognition": 0.5,
        "progress": 0.0,
        "serenity": 0.9,
        "connection": 0.3,
    }
    assert oldest["source"] == "bridge" and oldest["engine_version"] == "meters/1"
    assert oldest["provenance"]["missing"] == ["vitality"]
    # The other user sees only their own one snapshot.
    theirs = (await client.get(URL, headers=other_headers)).json()["items"]
    assert [item["meters"]["vitality"] for item in theirs] == [0.9]


async def test_from_to_filter_and_the_cursor_walks_every_snapshot_once(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, headers = await create_user()
    db_session.add_all([_snapshot(user_id, h, 0.5) for h in range(7)])
    await db_session.commit()
    params = {"from": (T0 + timedelta(hours=1)).isoformat(), "to": (T0 + timedelta(hours=5)).isoformat()}
    seen: list[str] = []
    cursor = None
    while True:
        page = await client.get(
            URL, params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})}, headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen.extend(item["taken_at"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = [T0 + timedelta(hours=h) for h in (5, 4, 3, 2, 1)]
    assert [datetime.fromisoformat(t) for t in seen] == expected


async def test_bad_ranges_and_times_are_clear_422s(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _, headers = await create_user()
    later, earlier = T0.isoformat(), (T0 - timedelta(hours=1)).isoformat()
    assert_error(
        await client.get(URL, params={"from": later, "to": earlier}, headers=headers), 422, "invalid_range"
    )
    for bad in ("2026-11-24T08:00:00", "1700000000", "0001-01-01T00:00:00Z"):
        response = await client.get(URL, params={"from": bad}, headers=headers)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"]
    response = await client.get(URL, params={"cursor": "not-a-cursor"}, headers=headers)
    assert response.status_code == 422
    assert (await client.get(URL)).status_code == 401

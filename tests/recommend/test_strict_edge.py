"""Request values are taken as sent: no string-to-number, number-to-string or scalar-to-list coercion (issue
10)."""

from __future__ import annotations

import httpx
import pytest

from domain import METER_NAMES
from tests.core.test_errors import assert_error
from tests.support import CreateUser

_METERS = dict.fromkeys(METER_NAMES, 0.5)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"meters": {**_METERS, METER_NAMES[0]: "0.5"}}, ["body", "meters", METER_NAMES[0]]),
        ({"meters": {**_METERS, METER_NAMES[1]: True}}, ["body", "meters", METER_NAMES[1]]),
        ({"exclude": "BINGE_WATCH"}, ["body", "exclude"]),
        ({"exclude": [3]}, ["body", "exclude", 0]),
        ({"at": 1_764_000_000}, ["body", "at"]),
        ({"at": False}, ["body", "at"]),
    ],
)
async def test_recommend_refuses_lax_values(
    client: httpx.AsyncClient, create_user: CreateUser, body: dict[str, object], loc: list[object]
) -> None:
    _, headers = await create_user()
    error = assert_error(
        await client.post("/v1/recommend", json=body, headers=headers), 422, "validation_error"
    )
    assert error["details"][0]["loc"] == loc  # type: ignore[index]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"recommendation_id": 123}, "recommendation_id"),
        ({"response": 1}, "response"),
        ({"response": True}, "response"),
    ],
)
async def test_feedback_refuses_lax_values(
    client: httpx.AsyncClient, create_user: CreateUser, patch: dict[str, object], field: str
) -> None:
    _, headers = await create_user()
    recommendation_id = (await client.post("/v1/recommend", json={}, headers=headers)).json()[
        "recommendation_id"
    ]
    body = {"recommendation_id": recommendation_id, "response": "accepted", **patch}
    error = assert_error(
        await client.post("/v1/feedback", json=body, headers=headers), 422, "validation_error"
    )
    assert error["details"][0]["loc"][:2] == ["body", field]  # type: ignore[index]

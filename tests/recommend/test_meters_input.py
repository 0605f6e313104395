"""The request's meters: strict JSON numbers in [0, 1], exactly the five meters, in the one error shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.recommend.schemas import MeterValues
from domain import METER_NAMES
from tests.support import CreateUser


def _meters(**override: Any) -> dict[str, Any]:
    return {**dict.fromkeys(METER_NAMES, 0.5), **override}


@pytest.mark.parametrize(
    "bad",
    [
        _meters(**{METER_NAMES[0]: "0.5"}),
        _meters(**{METER_NAMES[1]: True}),
        _meters(**{METER_NAMES[2]: 1.5}),
        _meters(**{METER_NAMES[3]: None}),
        {**_meters(), "mood": 0.5},
        {name: 0.5 for name in METER_NAMES[:-1]},
    ],
    ids=["string", "boolean", "above-one", "null", "unknown-meter", "missing-meter"],
)
async def test_meters_that_are_not_five_numbers_in_the_unit_interval_are_a_422(
    client: httpx.AsyncClient, create_user: CreateUser, bad: dict[str, Any]
) -> None:
    _user_id, headers = await create_user()
    response = await client.post("/v1/recommend", json={"meters": bad}, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert all(detail["loc"][:2] == ["body", "meters"] for detail in error["details"])


async def test_integer_zero_and_one_are_numbers_and_are_echoed_back(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _user_id, headers = await create_user()
    sent = _meters(**{METER_NAMES[0]: 1, METER_NAMES[4]: 0})
    response = await client.post("/v1/recommend", json={"meters": sent}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["meters"] == {name: float(value) for name, value in sent.items()}


def test_the_openapi_schema_lists_each_meter_as_a_bounded_number() -> None:
    schema = MeterValues.model_json_schema()
    assert list(schema["properties"]) == list(METER_NAMES)
    assert set(schema["required"]) == set(METER_NAMES)
    for prop in schema["properties"].values():
        assert prop["type"] == "number" and prop["minimum"] == 0.0 and prop["maximum"] == 1.0

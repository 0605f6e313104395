"""Timestamps at the edge: ISO 8601 strings with an offset, within RHYTHM_MAX_CLOCK_SKEW of now (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from tests.core.test_errors import assert_error
from tests.support import CreateUser, admin_headers_for, app_client, create_user_via_api, running_app


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _error_details(response: httpx.Response) -> list[dict[str, Any]]:
    error = assert_error(response, 422, "validation_error")
    details = error["details"]
    assert isinstance(details, list)
    return details


@pytest.mark.parametrize("at", ["0001-01-15T12:00:00Z", "9999-12-31T23:59:59+00:00", "1970-01-01T00:00:00Z"])
async def test_extreme_at_is_422_naming_the_range(
    client: httpx.AsyncClient, create_user: CreateUser, at: str
) -> None:
    _, headers = await create_user(timezone="Europe/Berlin")
    response = await client.post("/v1/recommend", json={"at": at}, headers=headers)
    (detail,) = _error_details(response)
    assert detail["loc"] == ["body", "at"]
    assert detail["type"] == "time_out_of_range"
    # The message states the window: one year either side of now by default.
    now = datetime.now(UTC)
    assert str((now - timedelta(days=365)).year) in detail["msg"]
    assert str((now + timedelta(days=365)).year) in detail["msg"]


async def test_at_inside_the_window_is_accepted(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, headers = await create_user(timezone="Europe/Berlin")
    for offset in (timedelta(days=-364), timedelta(days=364)):
        response = await client.post(
            "/v1/recommend", json={"at": _iso(datetime.now(UTC) + offset)}, headers=headers
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "at",
    [99999999999, 1_764_000_000, 1.5, True, "99999999999", "1764000000", "2026-11-24", "tomorrow", None],
)
async def test_at_must_be_an_iso_string(
    client: httpx.AsyncClient, create_user: CreateUser, at: object
) -> None:
    _, headers = await create_user()
    body = {"at": at}
    response = await client.post("/v1/recommend", json=body, headers=headers)
    if at is None:
        # null is the documented "now".
        assert response.status_code == 200, response.text
        return
    (detail,) = _error_details(response)
    assert detail["loc"] == ["body", "at"]


async def test_at_without_offset_is_refused(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, headers = await create_user()
    naive = datetime.now(UTC).replace(tzinfo=None).isoformat()
    response = await client.post("/v1/recommend", json={"at": naive}, headers=headers)
    assert _error_details(response)[0]["loc"] == ["body", "at"]


async def test_rescheduled_to_is_bounded_too(client: httpx.AsyncClient, create_user: CreateUser) -> None:
    _, headers = await create_user(timezone="Europe/Berlin")
    recommendation = await client.post("/v1/recommend", json={}, headers=headers)
    assert recommendation.status_code == 200
    body = {
        "recommendation_id": recommendation.json()["recommendation_id"],
        "response": "rescheduled",
        "rescheduled_to": "9999-12-31T23:59:59+00:00",
    }
    response = await client.post("/v1/feedback", json=body, headers=headers)
    (detail,) = _error_details(response)
    assert detail["loc"] == ["body", "rescheduled_to"]
    assert detail["type"] == "time_out_of_range"
    body["rescheduled_to"] = 1_764_000_000
    assert _error_details(await client.post("/v1/feedback", json=body, headers=headers))[0]["loc"] == [
        "body",
        "rescheduled_to",
    ]
    body["rescheduled_to"] = _iso(datetime.now(UTC) + timedelta(hours=3))
    assert (await client.post("/v1/feedback", json=body, headers=headers)).status_code == 200


async def test_the_bound_is_a_setting(settings: Settings, clean_database: str) -> None:
    narrow = settings.model_copy(update={"max_clock_skew": timedelta(days=1)})
    async with running_app(narrow) as app, app_client(app) as client:
        _, headers = await create_user_via_api(client, admin_headers_for(narrow))
        soon = await client.post(
            "/v1/recommend", json={"at": _iso(datetime.now(UTC) + timedelta(hours=12))}, headers=headers
        )
        assert soon.status_code == 200, soon.text
        later = await client.post(
            "/v1/recommend", json={"at": _iso(datetime.now(UTC) + timedelta(days=2))}, headers=headers
        )
        (detail,) = _error_details(later)
        assert "within 1.0 days" in detail["msg"]


def test_the_bound_is_capped_so_arithmetic_cannot_overflow() -> None:
    with pytest.raises(ValueError, match="max_clock_skew"):
        Settings(max_clock_skew=timedelta(days=100_000))


async def test_schema_states_the_bound(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    at = schemas["RecommendationCreate"]["properties"]["at"]
    rescheduled_to = schemas["FeedbackCreate"]["properties"]["rescheduled_to"]
    for field in (at, rescheduled_to):
        assert "RHYTHM_MAX_CLOCK_SKEW" in field["description"]
        assert "365 days" in field["description"]

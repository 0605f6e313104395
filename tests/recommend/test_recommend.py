"""POST /v1/recommend with the local backend against real Postgres: answers, logging, validation, time."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MeterSnapshot, Recommendation
from app.models.base import meter_values_of
from domain import ACTIONS, Meter
from tests.support import CreateUser

METERS = {"vitality": 0.7, "cognition": 0.6, "progress": 0.4, "serenity": 0.5, "connection": 0.3}


async def _stored(session: AsyncSession, recommendation_id: str) -> Recommendation:
    row = await session.get(Recommendation, uuid.UUID(recommendation_id))
    assert row is not None
    return row


async def test_recommend_answers_with_the_local_model_and_logs_the_propensity(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, headers = await create_user()
    response = await client.post("/v1/recommend", json={"meters": METERS}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["backend"] == "local"
    assert body["model"] == "rhythm-tiny"
    assert body["adapter"] is None
    assert body["meters_source"] == "request"
    assert list(body["probabilities"]) == [action.value for action in ACTIONS]
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-9)
    assert body["propensity"] == body["probabilities"][body["action"]]
    # The default exploration floor keeps every action loggable for offline evaluation.
    assert min(body["probabilities"].values()) >= 0.02 / len(ACTIONS) - 1e-12

    row = await _stored(db_session, body["recommendation_id"])
    assert row.user_id == user_id
    assert row.action.value == body["action"]
    assert row.propensity == pytest.approx(body["propensity"])
    assert row.probabilities == pytest.approx(list(body["probabilities"].values()))
    assert row.backend == "local" and row.model == "rhythm-tiny" and row.temperature == 1.0
    assert row.prompt_hash is not None and len(row.prompt_hash) == 64
    assert (row.meters[Meter.VITALITY], row.meters[Meter.CONNECTION]) == (0.7, 0.3)
    assert row.neutral_meters is False


async def test_empty_body_uses_neutral_meters_and_flags_them(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    response = await client.post("/v1/recommend", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meters_source"] == "neutral"
    # The model is shown the neutral 0.5 for each meter; nothing is known, so all five are missing.
    assert set(body["meters"].values()) == {0.5}
    assert body["missing_meters"] == [m.value for m in Meter]
    row = await _stored(db_session, body["recommendation_id"])
    assert row.neutral_meters is True
    # Stored as missing (NULL), not as a value nobody measured.
    assert meter_values_of(row) == (None,) * 5


async def test_meters_default_to_the_latest_snapshot_before_at(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, headers = await create_user()
    at = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    for hours, vitality in ((-5, 0.1), (-1, 0.9), (+1, 0.3)):  # the one after `at` must not be used
        db_session.add(
            MeterSnapshot(
                user_id=user_id,
                taken_at=at + timedelta(hours=hours),
                vitality=vitality,
                cognition=0.2,
                progress=0.3,
                serenity=0.4,
                connection=0.5,
                source="bridge",
            )
        )
    await db_session.commit()
    response = await client.post("/v1/recommend", json={"at": at.isoformat()}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meters_source"] == "snapshot"
    assert body["meters"] == {
        "vitality": 0.9,
        "cognition": 0.2,
        "progress": 0.3,
        "serenity": 0.4,
        "connection": 0.5,
    }


async def test_excluded_actions_get_zero_probability_and_are_never_chosen(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _, headers = await create_user()
    exclude = [action.value for action in ACTIONS[:9]]
    response = await client.post("/v1/recommend", json={"exclude": exclude[:5]}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert all(body["probabilities"][name] == 0.0 for name in exclude[:5])
    assert body["action"] not in exclude[:5]
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-9)
    # Nine excluded: the tenth is certain.
    response = await client.post("/v1/recommend", json={"exclude": exclude}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["action"] == ACTIONS[9].value
    assert response.json()["propensity"] == 1.0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"at": "2026-11-24T08:30:00"}, "at"),  # no offset
        ({"at": "tomorrow morning"}, "at"),
        ({"at": "2026-13-40T08:30:00Z"}, "at"),
        ({"meters": {**METERS, "vitality": 1.5}}, "vitality"),
        ({"meters": {**METERS, "serenity": -0.1}}, "serenity"),
        ({"meters": {"vitality": 0.5}}, "cognition"),  # incomplete
        ({"exclude": ["NAP"]}, "exclude"),
        ({"exclude": [action.value for action in ACTIONS]}, "exclude"),
        ({"mood": "great"}, "mood"),
    ],
)
async def test_invalid_requests_are_422_in_the_error_shape(
    client: httpx.AsyncClient, create_user: CreateUser, body: dict[str, object], where: str
) -> None:
    _, headers = await create_user()
    response = await client.post("/v1/recommend", json=body, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert where in str(error["details"])


async def test_recommend_needs_a_user_token(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    assert (await client.post("/v1/recommend")).status_code == 401
    assert (await client.post("/v1/recommend", headers=admin_headers)).status_code == 403


@pytest.mark.parametrize(
    ("timezone", "at", "date", "day", "slot"),
    [
        ("UTC", "2026-11-24T04:59:59+00:00", "2026-11-23", "Mon", "Night"),
        ("UTC", "2026-11-24T05:00:00+00:00", "2026-11-24", "Tue", "Morning"),
        ("UTC", "2026-11-24T11:59:00+00:00", "2026-11-24", "Tue", "Morning"),
        ("UTC", "2026-11-24T12:00:00+00:00", "2026-11-24", "Tue", "Afternoon"),
        ("UTC", "2026-11-24T17:00:00+00:00", "2026-11-24", "Tue", "Evening"),
        ("UTC", "2026-11-24T22:00:00+00:00", "2026-11-24", "Tue", "Night"),
        # 01:30 Tuesday in New York is still Monday's Night.
        ("America/New_York", "2026-11-24T06:30:00Z", "2026-11-23", "Mon", "Night"),
        ("America/New_York", "2026-11-24T14:00:00Z", "2026-11-24", "Tue", "Morning"),
        # The offset in `at` does not matter, only the instant: 23:30 UTC Monday is 08:30 Tuesday in Tokyo.
        ("Asia/Tokyo", "2026-11-23T18:30:00-05:00", "2026-11-24", "Tue", "Morning"),
        ("Europe/Berlin", "2026-11-24T16:30:00+00:00", "2026-11-24", "Tue", "Evening"),
    ],
)
async def test_day_and_slot_come_from_at_in_the_users_timezone(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    db_session: AsyncSession,
    timezone: str,
    at: str,
    date: str,
    day: str,
    slot: str,
) -> None:
    _, headers = await create_user(timezone=timezone)
    response = await client.post("/v1/recommend", json={"at": at}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["date"], body["day"], body["slot"]) == (date, day, slot)
    row = await _stored(db_session, body["recommendation_id"])
    assert row.at == datetime.fromisoformat(at)
    assert (row.day, row.slot) == (
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].index(day),
        ["Morning", "Afternoon", "Evening", "Night"].index(slot),
    )


async def test_recommendations_are_counted_in_metrics(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _, headers = await create_user()
    assert (await client.post("/v1/recommend", headers=headers)).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'rhythm_recommendations_total{backend="local"} 1.0' in text
    assert 'rhythm_policy_circuit_state{backend="local"} 0.0' in text
    assert 'rhythm_policy_backend_duration_seconds_count{backend="local",outcome="ok"} 1.0' in text


async def test_readiness_includes_the_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["policy"] is True

"""Readings in the database → the recompute → the stored snapshot → ``POST /v1/recommend`` without meters.

Each test writes two users' readings that differ in one known way and checks that the stored meters (and the
meters the recommendation then uses) move in the documented direction (docs/meters.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.models import MeterSnapshot, Recommendation
from bridges.meters import ContextInputs, Reading, SignalKind
from bridges.meters.context import register_context_source, unregister_context_source
from domain import Meter
from tests.meters.helpers import NOW, nightly, recompute, row_meters, write_readings
from tests.support import CreateUser

MORNING = NOW.replace(hour=7)
DAYS = 28


def _wiggle(base: float, step: float, n: int = DAYS - 1) -> list[float]:
    """A month of ordinary values around ``base`` (a person is never perfectly flat)."""
    return [base + step * ((i % 3) - 1) for i in range(n)]


def _body_month(
    *, sleep: float, hrv: float, rhr: float, source: str = "oura"
) -> list[tuple[SignalKind, float, datetime, str]]:
    """27 ordinary nights, then last night's ``sleep`` score, RMSSD ``hrv`` and resting HR ``rhr``."""
    return [
        *nightly(SignalKind.SLEEP_SCORE, [*_wiggle(80, 3), sleep], last=MORNING, source=source),
        *nightly(SignalKind.HRV_RMSSD, [*_wiggle(50, 4), hrv], last=MORNING, source=source),
        *nightly(SignalKind.RESTING_HEART_RATE, [*_wiggle(55, 1), rhr], last=MORNING, source=source),
    ]


async def _recommended_meters(
    client: httpx.AsyncClient, headers: dict[str, str], at: datetime = NOW
) -> dict[str, Any]:
    response = await client.post("/v1/recommend", json={"at": at.isoformat()}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["meters_source"] == "snapshot"
    return body


async def test_a_bad_night_lowers_vitality_through_the_snapshot_to_the_recommendation(
    settings: Settings, client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    good_id, good_headers = await create_user()
    bad_id, bad_headers = await create_user()
    write_readings(settings, good_id, _body_month(sleep=82, hrv=52, rhr=55))
    write_readings(settings, bad_id, _body_month(sleep=45, hrv=34, rhr=63))
    good, bad = recompute(settings, good_id), recompute(settings, bad_id)

    assert bad.value(Meter.VITALITY) < 0.3 < 0.45 < good.value(Meter.VITALITY)
    # The recommendation without meters reads exactly what was stored.
    good_body = await _recommended_meters(client, good_headers)
    bad_body = await _recommended_meters(client, bad_headers)
    assert bad_body["meters"]["vitality"] == pytest.approx(bad.value(Meter.VITALITY))
    assert good_body["meters"]["vitality"] == pytest.approx(good.value(Meter.VITALITY))
    assert bad_body["meters_taken_at"] is not None
    assert bad_body["meter_confidences"]["vitality"] == pytest.approx(bad.confidences[Meter.VITALITY])


async def test_high_stress_lowers_serenity(
    settings: Settings, client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    calm_id, calm_headers = await create_user()
    tense_id, tense_headers = await create_user()
    for user_id, stress in ((calm_id, 20.0), (tense_id, 85.0)):
        write_readings(settings, user_id, _body_month(sleep=80, hrv=50, rhr=55))
        write_readings(
            settings, user_id, [(SignalKind.STRESS_SCORE, stress, NOW - timedelta(hours=2), "oura")]
        )
    calm, tense = recompute(settings, calm_id), recompute(settings, tense_id)
    assert tense.value(Meter.SERENITY) < 0.4 < 0.6 < calm.value(Meter.SERENITY)
    assert (await _recommended_meters(client, tense_headers))["meters"]["serenity"] < (
        await _recommended_meters(client, calm_headers)
    )["meters"]["serenity"]


class _SocialCalendar:
    """A context source as the calendar bridge registers one: social events of the past 7 days per user."""

    def __init__(self, events: dict[uuid.UUID, int]) -> None:
        self.events = events

    def context_readings(self, user_id: uuid.UUID, now: datetime) -> Sequence[Reading]:
        if user_id not in self.events:
            return ()
        inputs = ContextInputs(
            observed_at=now - timedelta(hours=1), source="calendar", social_events_7d=self.events[user_id]
        )
        return inputs.readings()


async def test_a_week_of_social_events_raises_connection_and_no_source_leaves_it_missing(
    settings: Settings, client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    social_id, social_headers = await create_user()
    alone_id, alone_headers = await create_user()
    unknown_id, _ = await create_user()
    source = _SocialCalendar({social_id: 9, alone_id: 0})
    register_context_source(source)
    try:
        social, alone = recompute(settings, social_id), recompute(settings, alone_id)
        unknown = recompute(settings, unknown_id)
    finally:
        unregister_context_source(source)
    assert alone.value(Meter.CONNECTION) < 0.35 < 0.65 < social.value(Meter.CONNECTION)
    assert social.inputs(Meter.CONNECTION)[0]["source"] == "calendar"
    # Nothing known about the third user: missing (NULL, confidence 0), not a lonely 0.
    assert unknown.values[Meter.CONNECTION] is None and unknown.confidences[Meter.CONNECTION] == 0.0
    body = await _recommended_meters(client, social_headers)
    assert body["meters"]["connection"] == pytest.approx(social.value(Meter.CONNECTION))
    assert (await _recommended_meters(client, alone_headers))["meters"]["connection"] < body["meters"][
        "connection"
    ]


async def test_an_sdnn_reading_never_shifts_the_rmssd_baseline(
    settings: Settings, create_user: CreateUser
) -> None:
    plain_id, _ = await create_user()
    both_id, _ = await create_user()
    write_readings(settings, plain_id, _body_month(sleep=80, hrv=40, rhr=55))
    write_readings(settings, both_id, _body_month(sleep=80, hrv=40, rhr=55))
    # The same person also wears a watch that reports SDNN (far higher numbers), an hour before the ring.
    sdnn = nightly(SignalKind.HRV_SDNN, [120.0] * DAYS, last=MORNING - timedelta(hours=1), source="apple")
    write_readings(settings, both_id, sdnn)
    plain, both = recompute(settings, plain_id), recompute(settings, both_id)

    for meter in (Meter.VITALITY, Meter.SERENITY):
        hrv_plain = [i for i in plain.inputs(meter) if i["kind"].startswith("hrv")]
        hrv_both = [i for i in both.inputs(meter) if i["kind"].startswith("hrv")]
        assert [i["kind"] for i in hrv_both] == ["hrv_rmssd"]
        assert hrv_both[0]["baseline"] == hrv_plain[0]["baseline"]
        assert hrv_both[0]["z"] == hrv_plain[0]["z"]
        assert both.values[meter] == pytest.approx(plain.values[meter])


async def test_stale_data_decays_toward_neutral_then_goes_missing(
    settings: Settings, create_user: CreateUser
) -> None:
    user_id, _ = await create_user()
    write_readings(settings, user_id, _body_month(sleep=45, hrv=34, rhr=63))
    ages = (0, 2, 4)
    stored = [recompute(settings, user_id, NOW + timedelta(days=days)) for days in ages]
    distances = [abs(s.value(Meter.VITALITY) - 0.5) for s in stored]
    confidences = [s.confidence(Meter.VITALITY) for s in stored]
    assert distances[0] > distances[1] > distances[2] > 0
    assert confidences[0] > confidences[1] > confidences[2] > 0
    # Four half-lives past fresh, the night says nothing: missing with confidence 0, not a frozen value.
    expired = recompute(settings, user_id, NOW + timedelta(days=8))
    assert expired.values[Meter.VITALITY] is None and expired.confidences[Meter.VITALITY] == 0.0
    assert "vitality" in expired.provenance["missing"]


async def test_a_new_user_starts_from_population_defaults_that_give_way_to_their_own_baseline(
    settings: Settings, create_user: CreateUser
) -> None:
    new_id, _ = await create_user()
    known_id, _ = await create_user()
    write_readings(settings, new_id, nightly(SignalKind.HRV_RMSSD, [30.0], last=MORNING))
    # A person whose own normal is 30 ms: for them, 30 is an ordinary night, not a low one.
    write_readings(
        settings, known_id, nightly(SignalKind.HRV_RMSSD, [30.0, 31.0, 29.0] * 9 + [30.0], last=MORNING)
    )
    new, known = recompute(settings, new_id), recompute(settings, known_id)
    new_hrv, known_hrv = new.inputs(Meter.VITALITY)[0], known.inputs(Meter.VITALITY)[0]
    assert new_hrv["baseline"]["personal_weight"] == 0.0 and new_hrv["baseline"]["n_days"] == 0
    assert known_hrv["baseline"]["personal_weight"] > 0.75
    # Against the population (mean 42 ms) 30 ms is low; against the person's own month it is normal.
    assert new_hrv["z"] < -0.5 and abs(known_hrv["z"]) < 0.5
    assert new.value(Meter.VITALITY) < known.value(Meter.VITALITY)
    assert new.confidence(Meter.VITALITY) < known.confidence(Meter.VITALITY)


async def test_missing_meters_are_null_in_the_snapshot_and_the_recommendation_row(
    settings: Settings, client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, headers = await create_user()
    write_readings(settings, user_id, _body_month(sleep=80, hrv=50, rhr=55))
    stored = recompute(settings, user_id)
    # Sleep score, HRV and resting HR say nothing about deep sleep, tasks or friends.
    assert stored.values[Meter.PROGRESS] is None and stored.values[Meter.CONNECTION] is None
    assert stored.values[Meter.COGNITION] is None
    assert stored.confidences[Meter.PROGRESS] == 0.0
    row = await db_session.scalar(select(MeterSnapshot).where(MeterSnapshot.id == stored.id))
    assert row is not None and row_meters(row)["progress"] is None and row.engine_version == "meters/1"
    assert row.source == "bridge"

    body = await _recommended_meters(client, headers)
    assert set(body["missing_meters"]) == {"cognition", "progress", "connection"}
    # Renderer version 1 has no missing token: the model was shown the neutral value ...
    assert body["meters"]["progress"] == 0.5
    assert body["meter_confidences"]["progress"] == 0.0
    # ... and the logged row keeps the truth.
    rec = await db_session.scalar(
        select(Recommendation).where(Recommendation.id == uuid.UUID(body["recommendation_id"]))
    )
    assert rec is not None
    logged = row_meters(rec)
    assert logged["progress"] is None and logged["connection"] is None
    assert logged["vitality"] == pytest.approx(stored.value(Meter.VITALITY))

    # Answered, that row is history: the next prompt reads its NULLs back as neutral, it does not fail.
    answer = {"recommendation_id": body["recommendation_id"], "response": "accepted"}
    assert (await client.post("/v1/feedback", json=answer, headers=headers)).status_code in (200, 201)
    again = await client.post(
        "/v1/recommend", json={"at": (NOW + timedelta(hours=5)).isoformat()}, headers=headers
    )
    assert again.status_code == 200, again.text

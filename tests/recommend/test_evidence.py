"""The person's answers combined with the model in the service (policy.evidence), against real Postgres:
counted per slot from this user's feedback only, within the window, logged with the raw distribution."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.models import Recommendation
from domain import ACTIONS
from tests.recommend.helpers import app_with, new_user

pytestmark = pytest.mark.usefixtures("clean_database")

METERS = {"vitality": 0.7, "cognition": 0.6, "progress": 0.4, "serenity": 0.5, "connection": 0.3}
# Mornings (09:00 UTC) of the days before a fixed recent Monday; the users are in UTC.
MONDAY = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=7)
MONDAY -= timedelta(days=MONDAY.weekday())


async def _recommend(client: httpx.AsyncClient, headers: dict[str, str], at: datetime) -> dict[str, object]:
    response = await client.post(
        "/v1/recommend", json={"at": at.isoformat(), "meters": METERS}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def _answer(client: httpx.AsyncClient, headers: dict[str, str], rid: object, response: str) -> None:
    answer = await client.post(
        "/v1/feedback", json={"recommendation_id": rid, "response": response}, headers=headers
    )
    assert answer.status_code in (200, 201), answer.text


async def _row(app: FastAPI, rid: object) -> Recommendation:
    async with app.state.db.sessionmaker() as session:
        row: Recommendation | None = await session.get(Recommendation, uuid.UUID(str(rid)))
    assert row is not None
    return row


async def test_refused_actions_lose_mass_only_for_this_user_this_slot_and_within_the_window(
    settings: Settings,
) -> None:
    async with app_with(settings, exploration_floor=0.0, evidence_days=5) as (app, client):
        headers, other = await new_user(client, settings), await new_user(client, settings)
        refused: dict[str, int] = {}
        # Seven mornings refused; the first two fall outside the 5-day window of the last decision.
        for day in range(7):
            body = await _recommend(client, headers, MONDAY - timedelta(days=7 - day))
            await _answer(client, headers, body["recommendation_id"], "ignored")
            if day >= 2:
                refused[str(body["action"])] = refused.get(str(body["action"]), 0) + 1
        # An evening answer is evidence about evenings, not mornings.
        evening = await _recommend(client, headers, MONDAY - timedelta(days=1) + timedelta(hours=10))
        await _answer(client, headers, evening["recommendation_id"], "accepted")

        body = await _recommend(client, headers, MONDAY)
        row = await _row(app, body["recommendation_id"])
        assert row.model_probabilities is not None and row.evidence is not None
        assert row.exploration_floor == 0.0
        log = row.evidence
        assert log["answers"] == 5 + 1  # 5 mornings and the evening inside the window
        assert log["accepted"] == [0.0] * len(ACTIONS)
        assert {ACTIONS[i].value: n for i, n in enumerate(log["rejected"]) if n} == refused
        # Five refusals of six answers: the answers weigh 12 × (1 − 2/8).
        assert log["effective_weight"] == pytest.approx(12 * (1 - 2 / 8))

        model = np.asarray(row.model_probabilities)
        served = np.asarray(row.probabilities)
        assert math.isclose(served.sum(), 1.0, abs_tol=1e-9)
        untried = [i for i, n in enumerate(log["rejected"]) if n == 0]
        for name in refused:
            a = ACTIONS.index(next(x for x in ACTIONS if x.value == name))
            for u in untried:
                # Relative to an action never offered here, a refused one lost at least 5 nats beyond what
                # softening the model (sharpness 0.25) changed.
                shift = math.log(served[a] / served[u]) - 0.25 * math.log(model[a] / model[u])
                assert shift < -5.0, (name, ACTIONS[u], shift)

        # The other user's first decision sees none of this.
        fresh = await _row(app, (await _recommend(client, other, MONDAY))["recommendation_id"])
        assert fresh.evidence is not None and fresh.evidence["answers"] == 0
        assert fresh.evidence["rejected"] == [0.0] * len(ACTIONS)


async def test_accepted_actions_gain_mass(settings: Settings) -> None:
    async with app_with(settings, exploration_floor=0.0) as (app, client):
        headers = await new_user(client, settings)
        accepted: set[str] = set()
        for day in range(4):
            body = await _recommend(client, headers, MONDAY - timedelta(days=4 - day))
            await _answer(client, headers, body["recommendation_id"], "accepted")
            accepted.add(str(body["action"]))
        row = await _row(app, (await _recommend(client, headers, MONDAY))["recommendation_id"])
        assert row.evidence is not None and row.model_probabilities is not None
        model, served = np.asarray(row.model_probabilities), np.asarray(row.probabilities)
        gained = [ACTIONS.index(next(x for x in ACTIONS if x.value == name)) for name in accepted]
        untried = [i for i in range(len(ACTIONS)) if i not in gained]
        for a in gained:
            for u in untried:
                assert math.log(served[a] / served[u]) > 0.25 * math.log(model[a] / model[u]) + 1.0


async def test_weight_zero_serves_the_backends_distribution_and_logs_no_evidence(settings: Settings) -> None:
    async with app_with(settings, evidence_weight=0.0, exploration_floor=0.0) as (app, client):
        headers = await new_user(client, settings)
        first = await _recommend(client, headers, MONDAY - timedelta(days=1))
        await _answer(client, headers, first["recommendation_id"], "ignored")
        row = await _row(app, (await _recommend(client, headers, MONDAY))["recommendation_id"])
        assert row.evidence is None
        assert row.model_probabilities == pytest.approx(row.probabilities)


async def test_the_grouped_evidence_query_counts_what_the_history_holds(settings: Settings) -> None:
    """The repository counts answers per kind of day in SQL; the same answers read as history rows and counted
    one by one (policy.evidence) must give the same arrays, weekend and weekday apart, this user's only."""
    from app.recommend.repository import RecommendationRepository
    from policy.evidence import Evidence

    rng = np.random.default_rng(5)
    async with app_with(settings) as (app, client):
        headers, other = await new_user(client, settings), await new_user(client, settings)
        rid = None
        for day in range(13, 0, -1):
            for hour in (9, 20):
                for who in (headers, other):
                    body = await _recommend(
                        client, who, MONDAY - timedelta(days=day) + timedelta(hours=hour - 9)
                    )
                    response = str(rng.choice(["accepted", "ignored", "rescheduled"]))
                    await _answer(client, who, body["recommendation_id"], response)
                    rid = rid or body["recommendation_id"]
        user_id = (await _row(app, rid)).user_id
        start, end = MONDAY - timedelta(days=14), MONDAY
        async with app.state.db.sessionmaker() as session:
            repo = RecommendationRepository(session)
            grouped = await repo.evidence(user_id, start, end)
            one_by_one = Evidence.from_interactions(await repo.history(user_id, start, end, 1000))
    assert grouped.answers == one_by_one.answers == 26
    np.testing.assert_array_equal(grouped.accepted, one_by_one.accepted)
    np.testing.assert_array_equal(grouped.rejected, one_by_one.rejected)
    # Two weekends fall in the 13 days: both kinds of day hold answers.
    both = grouped.accepted + grouped.rejected
    assert both[0].sum() == 18 and both[1].sum() == 8

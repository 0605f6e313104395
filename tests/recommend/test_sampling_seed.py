"""``RHYTHM_SAMPLING_SEED``: the draw is keyed by (seed, at, prompt), not by the order requests arrive in, so
a simulation run again with the same seed lives the same lives; unset, every draw is fresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from app.core.config import Settings
from tests.support import admin_headers_for, app_client, create_user_via_api, make_settings, running_app

METERS = {"vitality": 0.7, "cognition": 0.6, "progress": 0.4, "serenity": 0.5, "connection": 0.3}
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # a Monday morning
MOMENTS = [START + timedelta(hours=5 * i) for i in range(24)]


def seeded(database_url: str, seed: int | None) -> Settings:
    # The exact-Bayes fallback at a high temperature: a flat distribution, so draws differ often.
    return make_settings(database_url, policy_backend="fallback", temperature=10.0, sampling_seed=seed)


async def life(client: httpx.AsyncClient, settings: Settings) -> list[str]:
    """A new person's answers at ``MOMENTS`` (each recommendation accepted, so it enters the next prompt)."""
    _, headers = await create_user_via_api(client, admin_headers_for(settings))
    actions = []
    for at in MOMENTS:
        response = await client.post(
            "/v1/recommend", json={"at": at.isoformat(), "meters": METERS}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        feedback = {"recommendation_id": body["recommendation_id"], "response": "accepted"}
        assert (await client.post("/v1/feedback", json=feedback, headers=headers)).status_code in (200, 201)
        actions.append(body["action"])
    return actions


async def test_the_same_seed_draws_the_same_lives_in_any_process_and_another_seed_does_not(
    database_url: str, clean_database: str
) -> None:
    lives: dict[str, list[str]] = {}
    for name, seed in (("first", 5), ("second", 5), ("other", 6), ("unseeded", None)):
        settings = seeded(database_url, seed)
        # A fresh app each time: its policy service (and any generator it holds) starts anew.
        async with running_app(settings) as app, app_client(app) as client:
            lives[name] = await life(client, settings)
            if name == "first":
                # The same person twice in one process: the keyed draw ignores how many came before.
                lives["first, again"] = await life(client, settings)
    assert len(set(lives["first"])) >= 4, lives["first"]
    assert lives["first"] == lives["second"] == lives["first, again"]
    assert lives["other"] != lives["first"]
    assert lives["unseeded"] != lives["first"]

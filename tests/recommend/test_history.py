"""The prompt's history: answered recommendations in a window of whole local slot days, oldest first."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import PolicyBackend, Settings
from app.models import Recommendation
from domain import Action, Interaction, Meter, Meters, Response, Slot, SlotState
from policy.prompt import CURRENT_PREFIX, parse_prompt, render_prompt
from tests.factories import deploy_adapter
from tests.recommend.helpers import app_with, new_user
from tests.recommend.stub_server import StubModelServer
from tests.support import CreateUser

pytestmark = pytest.mark.usefixtures("clean_database")

METERS = {"vitality": 0.7, "cognition": 0.6, "progress": 0.4, "serenity": 0.5, "connection": 0.3}


async def _answered(
    client: httpx.AsyncClient, headers: dict[str, str], at: str, response: str | None, **meters: float
) -> dict[str, object]:
    """A recommendation for ``at`` (and its feedback, unless ``response`` is None)."""
    made = await client.post(
        "/v1/recommend", json={"at": at, "meters": {**METERS, **meters}}, headers=headers
    )
    assert made.status_code == 200, made.text
    body: dict[str, object] = made.json()
    if response is not None:
        answer = {"recommendation_id": body["recommendation_id"], "response": response}
        assert (await client.post("/v1/feedback", json=answer, headers=headers)).status_code == 200
    return body


def _history_part(prompt: str) -> str:
    return prompt[: prompt.index(CURRENT_PREFIX)]


async def test_history_is_answered_recommendations_in_the_window_oldest_first(
    settings: Settings, stub_server: StubModelServer
) -> None:
    overrides = {"policy_backend": PolicyBackend.VLLM, "vllm_url": stub_server.url, "history_days": 3}
    async with app_with(settings, **overrides) as (_, client):
        headers = await new_user(client, settings)
        made = {
            "E": await _answered(client, headers, "2026-11-23T18:00:00Z", "rescheduled", vitality=0.15),
            "A": await _answered(client, headers, "2026-11-21T04:59:00Z", "accepted"),  # Friday Night: before
            "C": await _answered(client, headers, "2026-11-22T13:00:00Z", "ignored", vitality=0.25),
            "F": await _answered(client, headers, "2026-11-23T21:00:00Z", "accepted"),  # after `at`
            "B": await _answered(client, headers, "2026-11-21T05:00:00Z", "accepted", vitality=0.35),
            "D": await _answered(client, headers, "2026-11-23T09:00:00Z", None),  # never answered
        }
        response = await client.post(
            "/v1/recommend", json={"at": "2026-11-23T20:00:00Z", "meters": METERS}, headers=headers
        )
        assert response.status_code == 200, response.text
        prompt = stub_server.bodies[-1]["prompt"]
        history, current = parse_prompt(prompt)
        assert "Recent interactions (last 3 days):" in prompt
        assert [(h.state.day, h.state.slot, h.state.meters[Meter.VITALITY]) for h in history] == [
            (5, Slot.MORNING, 0.35),  # B: Sat 05:00, the window's first instant
            (6, Slot.AFTERNOON, 0.25),  # C
            (0, Slot.EVENING, 0.15),  # E
        ]
        assert [h.action.value for h in history] == [made[k]["action"] for k in ("B", "C", "E")]
        assert [h.response for h in history] == [Response.ACCEPTED, Response.IGNORED, Response.RESCHEDULED]
        assert (current.day, current.slot) == (0, Slot.EVENING)


async def test_the_window_start_moves_in_whole_local_days(
    settings: Settings, stub_server: StubModelServer
) -> None:
    overrides = {"policy_backend": PolicyBackend.VLLM, "vllm_url": stub_server.url, "history_days": 2}
    async with app_with(settings, **overrides) as (_, client):
        headers = await new_user(client, settings, timezone="America/Los_Angeles")
        # Sunday 06:00 local (slot day Sunday): the first instant of a 2-day window ending Monday.
        await _answered(client, headers, "2026-11-22T06:00:00-08:00", "accepted", vitality=0.11)
        await _answered(client, headers, "2026-11-23T06:30:00-08:00", "ignored", vitality=0.22)

        async def prompt_at(at: str) -> str:
            response = await client.post("/v1/recommend", json={"at": at, "meters": METERS}, headers=headers)
            assert response.status_code == 200, response.text
            prompt: str = stub_server.bodies[-1]["prompt"]
            return prompt

        morning = await prompt_at("2026-11-23T07:00:00-08:00")
        await _answered(client, headers, "2026-11-23T13:00:00-08:00", "accepted", vitality=0.33)
        # 02:00 Tuesday local is still Monday's Night: same slot day, same window start.
        night = await prompt_at("2026-11-24T02:00:00-08:00")
        assert [h.state.meters[Meter.VITALITY] for h in parse_prompt(morning)[0]] == [0.11, 0.22]
        assert [h.state.meters[Meter.VITALITY] for h in parse_prompt(night)[0]] == [0.11, 0.22, 0.33]
        # Prefix-stable within the day: the later prompt only appended history lines.
        assert _history_part(night).startswith(_history_part(morning))
        # Next slot day: Sunday leaves the window.
        tuesday = await prompt_at("2026-11-24T05:00:00-08:00")
        assert [h.state.meters[Meter.VITALITY] for h in parse_prompt(tuesday)[0]] == [0.22, 0.33]


async def test_users_with_a_deployed_adapter_get_the_shorter_window(
    settings: Settings, stub_server: StubModelServer
) -> None:
    overrides = {
        "policy_backend": PolicyBackend.VLLM,
        "vllm_url": stub_server.url,
        "history_days": 3,
        "adapter_history_days": 1,
    }
    async with app_with(settings, **overrides) as (app, client):
        headers = await new_user(client, settings)
        await _answered(client, headers, "2026-11-22T09:00:00Z", "accepted", vitality=0.11)
        await _answered(client, headers, "2026-11-23T09:00:00Z", "accepted", vitality=0.22)
        at = {"at": "2026-11-23T20:00:00Z", "meters": METERS}
        assert (await client.post("/v1/recommend", json=at, headers=headers)).status_code == 200
        assert len(parse_prompt(stub_server.bodies[-1]["prompt"])[0]) == 2

        user_id = uuid.UUID((await client.get("/v1/users/me", headers=headers)).json()["user_id"])
        name = f"u-{user_id.hex[:8]}-w1"
        async with app.state.db.sessionmaker() as session:
            await deploy_adapter(session, user_id, name)
        stub_server.models.add(name)
        assert (await client.post("/v1/recommend", json=at, headers=headers)).json()["adapter"] == name
        prompt = stub_server.bodies[-1]["prompt"]
        assert "Recent interactions (last 1 days):" in prompt
        assert [h.state.meters[Meter.VITALITY] for h in parse_prompt(prompt)[0]] == [0.22]


async def test_local_backend_prompt_hash_is_the_rendered_history(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession, settings: Settings
) -> None:
    _, headers = await create_user()
    first = await _answered(client, headers, "2026-11-23T08:00:00Z", "ignored", vitality=0.9)
    second = await _answered(client, headers, "2026-11-23T13:00:00Z", None)
    assert first["backend"] == second["backend"] == "local"
    current = await _answered(client, headers, "2026-11-23T18:00:00Z", None)
    expected = render_prompt(
        [
            Interaction(
                SlotState(0, Slot.MORNING, Meters(0.9, 0.6, 0.4, 0.5, 0.3)),
                Action(str(first["action"])),
                Response.IGNORED,
            )
        ],
        SlotState(0, Slot.EVENING, Meters(0.7, 0.6, 0.4, 0.5, 0.3)),
        window_days=settings.history_days,
    )
    row = await db_session.get(Recommendation, uuid.UUID(str(current["recommendation_id"])))
    assert row is not None
    assert row.prompt_hash == hashlib.sha256(expected.encode()).hexdigest()
    assert row.at == datetime.fromisoformat("2026-11-23T18:00:00+00:00")

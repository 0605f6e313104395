"""The vllm backend against a real vLLM CPU server serving the shipped policy model.

Needs the vLLM venv (built on first use by ``scripts/vllm-venv.sh``); about a minute per server start.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from app.core.config import PolicyBackend, Settings
from app.models import Recommendation
from app.recommend.backends.base import PolicyInput
from app.recommend.backends.local import LocalBackend
from app.recommend.backends.vllm import VLLMBackend
from policy.prompt import render_prompt
from sim.domain import ACTIONS, RESPONSES, Interaction, Meters, Slot, SlotState
from tests.recommend.helpers import app_with, metric, new_user
from tests.recommend.vllm_server import SERVED_NAME, VLLMServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _random_case(rng: random.Random, n: int) -> tuple[list[Interaction], SlotState]:
    def state() -> SlotState:
        meters = Meters(*(round(rng.random(), 2) for _ in range(5)))
        return SlotState(rng.randrange(7), Slot(rng.randrange(4)), meters)

    history = [Interaction(state(), rng.choice(ACTIONS), rng.choice(RESPONSES)) for _ in range(n)]
    return history, state()


@pytest.mark.usefixtures("clean_database")
async def test_vllm_backend_end_to_end_through_the_api(settings: Settings, vllm_server: VLLMServer) -> None:
    overrides = {"policy_backend": PolicyBackend.VLLM, "vllm_url": vllm_server.url}
    async with app_with(settings, **overrides) as (app, client):
        assert (await client.get("/readyz")).json()["checks"]["policy"] is True
        headers = await new_user(client, settings)
        for response in ("accepted", "ignored", None):
            made = await client.post("/v1/recommend", headers=headers)
            assert made.status_code == 200, made.text
            body = made.json()
            assert (body["backend"], body["model"], body["adapter"]) == ("vllm", SERVED_NAME, None)
            assert sum(body["probabilities"].values()) == pytest.approx(1.0)
            assert body["propensity"] == body["probabilities"][body["action"]]
            if response:
                answer = {"recommendation_id": body["recommendation_id"], "response": response}
                assert (await client.post("/v1/feedback", json=answer, headers=headers)).status_code == 200
        async with app.state.db.sessionmaker() as session:
            row = await session.get(Recommendation, uuid.UUID(body["recommendation_id"]))
        assert row is not None and (row.backend, row.model) == ("vllm", SERVED_NAME)


async def test_vllm_and_local_distributions_agree(vllm_server: VLLMServer) -> None:
    local = await LocalBackend.load()
    async with httpx.AsyncClient(base_url=vllm_server.root, timeout=30.0) as http:
        remote = VLLMBackend(http)
        rng = random.Random(5)
        worst = 0.0
        for n in (0, 1, 13, 60, 120):
            history, current = _random_case(rng, n)
            inp = PolicyInput(render_prompt(history, current), history, current)
            a = (await local.decide(inp)).probabilities
            b = (await remote.decide(inp)).probabilities
            worst = max(worst, float(np.abs(a - b).max()))
        await local.aclose()
    assert worst < 1e-3, worst


async def test_a_server_without_the_users_adapter_serves_the_base_model(vllm_server: VLLMServer) -> None:
    async with httpx.AsyncClient(base_url=vllm_server.root, timeout=30.0) as http:
        history, current = _random_case(random.Random(1), 8)
        inp = PolicyInput(render_prompt(history, current), history, current, adapter="u-missing-w1")
        decision = await VLLMBackend(http).decide(inp)
    assert (decision.backend, decision.adapter, decision.model) == ("vllm", None, SERVED_NAME)


@pytest.mark.usefixtures("clean_database")
async def test_killing_the_server_mid_test_flips_to_fallback_without_errors(
    settings: Settings, spawn_vllm: Callable[[], VLLMServer]
) -> None:
    server = spawn_vllm()
    overrides = {"policy_backend": PolicyBackend.VLLM, "vllm_url": server.url, "policy_failure_threshold": 3}
    async with app_with(settings, **overrides) as (_, client):
        headers = await new_user(client, settings)
        before = await asyncio.gather(*(client.post("/v1/recommend", headers=headers) for _ in range(4)))
        assert [r.json()["backend"] for r in before] == ["vllm"] * 4
        server.kill()
        after = await asyncio.gather(*(client.post("/v1/recommend", headers=headers) for _ in range(8)))
        assert [r.status_code for r in after] == [200] * 8
        assert [r.json()["backend"] for r in after] == ["fallback"] * 8
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, 'rhythm_policy_circuit_state{backend="vllm"}') == 2.0
        assert metric(metrics, 'rhythm_policy_fallbacks_total{reason="circuit_open"}') >= 1.0
        assert (await client.get("/readyz")).status_code == 503

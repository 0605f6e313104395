"""The vllm backend against a real vLLM CPU server serving the shipped policy model.

Needs the vLLM venv (built on first use by ``scripts/vllm-venv.sh``); about a minute per server start.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.benchmarks.vllm_server import SERVED_NAME, VLLMServer
from app.core.config import PolicyBackend, Settings
from app.models import Adapter, AdapterStatus, Recommendation
from app.recommend.backends.base import PolicyInput
from app.recommend.backends.embedded import EmbeddedBackend
from app.recommend.backends.vllm import VLLMBackend
from domain import ACTIONS, RESPONSES, Interaction, Meters, Slot, SlotState
from policy.paths import SHIPPED_MODEL_DIR, base_model_version
from policy.prompt import render_prompt
from tests.recommend.helpers import app_with, metric, new_user

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
    local = await EmbeddedBackend.load()
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
        # Concurrent requests may all have been let through before the first failure; by now the circuit is
        # open and the next request does not even try the dead server.
        assert (await client.post("/v1/recommend", headers=headers)).json()["backend"] == "fallback"
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, 'rhythm_policy_circuit_state{backend="vllm"}') == 2.0
        assert metric(metrics, 'rhythm_policy_fallbacks_total{reason="circuit_open"}') >= 1.0
        assert (await client.get("/readyz")).status_code == 503


def _make_adapter(directory: Path) -> Path:
    """A peft LoRA adapter (r=8, q/v projections) on the shipped model, with non-zero weights so that it
    changes the model's answers (peft's default init would make it an identity)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(SHIPPED_MODEL_DIR, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(str(directory))
    return directory


@pytest.mark.usefixtures("clean_database")
async def test_a_users_deployed_lora_adapter_answers_through_the_api(
    settings: Settings, vllm_server: VLLMServer, tmp_path: Path
) -> None:
    name = f"u-test-{uuid.uuid4().hex[:8]}-w1"
    path = _make_adapter(tmp_path / name)
    async with httpx.AsyncClient(base_url=vllm_server.root, timeout=60.0) as http:
        loaded = await http.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)})
        assert loaded.status_code == 200, loaded.text
        history, current = _random_case(random.Random(3), 40)
        prompt = render_prompt(history, current)
        backend = VLLMBackend(http)
        base = await backend.decide(PolicyInput(prompt, history, current))
        tuned = await backend.decide(PolicyInput(prompt, history, current, adapter=name))
    assert (tuned.adapter, tuned.model) == (name, SERVED_NAME)
    assert float(np.abs(tuned.probabilities - base.probabilities).max()) > 1e-3

    overrides = {"policy_backend": PolicyBackend.VLLM, "vllm_url": vllm_server.url}
    async with app_with(settings, **overrides) as (app, client):
        headers = await new_user(client, settings)
        user_id = uuid.UUID((await client.get("/v1/users/me", headers=headers)).json()["user_id"])
        async with app.state.db.sessionmaker() as session:
            session.add(
                Adapter(
                    user_id=user_id,
                    name=name,
                    version=1,
                    base_model=base_model_version(),
                    uri=path.as_uri(),
                    status=AdapterStatus.ACTIVE,
                )
            )
            await session.commit()
        body = (await client.post("/v1/recommend", headers=headers)).json()
        assert (body["backend"], body["model"], body["adapter"]) == ("vllm", SERVED_NAME, name)

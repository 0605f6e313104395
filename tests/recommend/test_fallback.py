"""The vllm backend against failing model servers: the fallback answers, the circuit breaker stops hammering.

A port where nothing listens is a real outage; the scriptable stub server (vLLM's reply format) produces the
failure modes a real server cannot be made to produce on demand.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from datetime import timedelta

import pytest

from app.benchmarks.api import free_port
from app.core.config import PolicyBackend, Settings
from app.models import Recommendation
from policy.prompt import ANSWER_CHOICES
from sim.profiles import ARCHETYPE_NAMES
from tests.factories import deploy_adapter
from tests.recommend.helpers import app_with, metric, new_user
from tests.recommend.stub_server import DEFAULT_PROBS, TOKEN_IDS, StubModelServer

pytestmark = pytest.mark.usefixtures("clean_database")


def _vllm(url: str, **more: object) -> dict[str, object]:
    return {"policy_backend": PolicyBackend.VLLM, "vllm_url": url, **more}


async def test_nothing_listening_means_fallback_with_belief_and_logged_propensity(settings: Settings) -> None:
    async with app_with(settings, **_vllm(f"http://127.0.0.1:{free_port()}/v1")) as (app, client):
        headers = await new_user(client, settings)
        response = await client.post("/v1/recommend", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["backend"], body["model"], body["adapter"]) == ("fallback", "exact-bayes", None)
        assert set(body["belief"]) == set(ARCHETYPE_NAMES)
        assert math.isclose(sum(body["belief"].values()), 1.0, abs_tol=1e-9)
        assert body["propensity"] == body["probabilities"][body["action"]]
        async with app.state.db.sessionmaker() as session:
            row = await session.get(Recommendation, uuid.UUID(body["recommendation_id"]))
        assert row is not None
        assert (row.backend, row.model) == ("fallback", "exact-bayes")
        assert row.propensity == pytest.approx(body["propensity"])
        assert row.belief == pytest.approx(body["belief"])
        assert row.prompt_hash is not None and len(row.prompt_hash) == 64
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["details"]["checks"]["policy"] is False


async def test_a_healthy_server_answers_with_its_distribution(
    settings: Settings, stub_server: StubModelServer
) -> None:
    async with app_with(settings, **_vllm(stub_server.url)) as (_, client):
        headers = await new_user(client, settings)
        response = await client.post("/v1/recommend", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["backend"], body["model"]) == ("vllm", "rhythm-policy")
        # The server's distribution softened by the evidence sharpness (a new user has no answers to add,
        # policy.evidence), with the service's exploration floor mixed in.
        soft = [p**settings.evidence_sharpness for p in DEFAULT_PROBS]
        floor = settings.exploration_floor
        expected = [(1.0 - floor) * p / sum(soft) + floor / len(DEFAULT_PROBS) for p in soft]
        assert list(body["probabilities"].values()) == pytest.approx(expected, abs=1e-9)
        request = stub_server.bodies[-1]
        assert request["structured_outputs"] == {"choice": ANSWER_CHOICES}
        assert request["logprob_token_ids"] == TOKEN_IDS
        assert (request["model"], request["max_tokens"], request["return_tokens_as_token_ids"]) == (
            "rhythm-policy",
            1,
            True,
        )
        assert request["prompt"].endswith("Recommend an action:")
        # Model name and token ids are asked once, not per request.
        assert (await client.post("/v1/recommend", headers=headers)).json()["backend"] == "vllm"
        assert stub_server.hits["/v1/models"] == 1
        assert stub_server.hits["/tokenize"] == len(ANSWER_CHOICES)


@pytest.mark.parametrize(
    "mode", ["http500", "garbage", "not_an_action", "missing_logprobs", "too_much_mass", "nan"]
)
async def test_a_misbehaving_server_means_fallback_never_5xx(
    settings: Settings, stub_server: StubModelServer, mode: str
) -> None:
    stub_server.mode = mode
    async with app_with(settings, **_vllm(stub_server.url)) as (_app, client):
        headers = await new_user(client, settings)
        response = await client.post("/v1/recommend", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["backend"] == "fallback"
        assert stub_server.hits["/v1/completions"] == 1
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, 'rhythm_policy_fallbacks_total{reason="error"}') == 1.0
        assert metric(metrics, 'rhythm_recommendations_total{backend="fallback"}') == 1.0


async def test_a_hanging_server_is_cut_off_by_the_timeout(
    settings: Settings, stub_server: StubModelServer
) -> None:
    stub_server.mode = "hang"
    stub_server.hang_s = 3.0
    async with app_with(settings, **_vllm(stub_server.url, vllm_timeout=timedelta(milliseconds=300))) as (
        _,
        client,
    ):
        headers = await new_user(client, settings)
        started = time.monotonic()
        response = await client.post("/v1/recommend", headers=headers)
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert response.json()["backend"] == "fallback"
        assert elapsed < 2.0


async def test_circuit_opens_after_consecutive_failures_and_half_opens_after_cooldown(
    settings: Settings, stub_server: StubModelServer
) -> None:
    stub_server.mode = "http500"
    overrides = _vllm(stub_server.url, policy_failure_threshold=2, policy_cooldown=timedelta(seconds=1))
    async with app_with(settings, **overrides) as (_, client):
        headers = await new_user(client, settings)
        backends = [(await client.post("/v1/recommend", headers=headers)).json()["backend"] for _ in range(5)]
        assert backends == ["fallback"] * 5
        # Two failures opened the circuit: the other three never reached the server.
        assert stub_server.hits["/v1/completions"] == 2
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, 'rhythm_policy_circuit_state{backend="vllm"}') == 2.0
        assert metric(metrics, 'rhythm_policy_fallbacks_total{reason="circuit_open"}') == 3.0

        # Cool-down over, still failing: exactly one probe goes through, and the circuit opens again.
        await asyncio.sleep(1.1)
        for _ in range(3):
            assert (await client.post("/v1/recommend", headers=headers)).json()["backend"] == "fallback"
        assert stub_server.hits["/v1/completions"] == 3

        # Cool-down over, server healthy: the probe succeeds and closes the circuit.
        stub_server.mode = "ok"
        await asyncio.sleep(1.1)
        backends = [(await client.post("/v1/recommend", headers=headers)).json()["backend"] for _ in range(3)]
        assert backends == ["vllm"] * 3
        assert stub_server.hits["/v1/completions"] == 6
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, 'rhythm_policy_circuit_state{backend="vllm"}') == 0.0


async def test_a_deployed_adapter_is_used_as_the_model(
    settings: Settings, stub_server: StubModelServer
) -> None:
    async with app_with(settings, **_vllm(stub_server.url)) as (app, client):
        headers = await new_user(client, settings)
        user_id = uuid.UUID((await client.get("/v1/users/me", headers=headers)).json()["user_id"])
        name = f"u-{user_id.hex[:8]}-w1"
        async with app.state.db.sessionmaker() as session:
            await deploy_adapter(session, user_id, name)
        stub_server.models.add(name)
        body = (await client.post("/v1/recommend", headers=headers)).json()
        assert (body["backend"], body["model"], body["adapter"]) == ("vllm", "rhythm-policy", name)
        assert stub_server.bodies[-1]["model"] == name
        async with app.state.db.sessionmaker() as session:
            row = await session.get(Recommendation, uuid.UUID(body["recommendation_id"]))
        assert row is not None and row.adapter == name and row.adapter_id is not None

        # The server lost the adapter (e.g. restarted): the base model answers, no fallback, no breaker trip.
        stub_server.models.discard(name)
        body = (await client.post("/v1/recommend", headers=headers)).json()
        assert (body["backend"], body["adapter"]) == ("vllm", None)
        assert [b["model"] for b in stub_server.bodies[-2:]] == [name, "rhythm-policy"]


async def test_fallback_as_the_configured_backend_is_not_counted_as_a_fallback(settings: Settings) -> None:
    async with app_with(settings, policy_backend=PolicyBackend.FALLBACK) as (_, client):
        headers = await new_user(client, settings)
        body = (await client.post("/v1/recommend", headers=headers)).json()
        assert (body["backend"], body["model"]) == ("fallback", "exact-bayes")
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, 'rhythm_recommendations_total{backend="fallback"}') == 1.0
        assert metric(metrics, "rhythm_policy_fallbacks_total") == 0.0
        assert (await client.get("/readyz")).json()["checks"]["policy"] is True

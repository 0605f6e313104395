"""Adapters on the real vLLM CPU server: a trained adapter answers the same distribution through vLLM and
through the local backend (merged by peft), and after a vLLM restart the reconciliation loads it again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.benchmarks.vllm_server import VLLMServer, ensure_venv
from app.core.config import PolicyBackend, Settings
from app.core.db import task_session
from app.finetune import deploy, service
from app.models import Adapter, AdapterStatus
from app.recommend.backends.base import PolicyInput
from app.recommend.backends.embedded import EmbeddedBackend
from app.recommend.backends.vllm import VLLMBackend
from policy.finetune import Example, FinetuneConfig, finetune
from policy.local import LocalPolicyModel
from policy.paths import SHIPPED_MODEL_DIR, base_model_version
from policy.prompt import render_prompt
from tests.policy.conftest import make_history
from tests.support import CreateUser, make_settings

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.usefixtures("clean_database")]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[], VLLMServer]]:
    started: list[VLLMServer] = []

    def _spawn() -> VLLMServer:
        ensure_venv()
        server = VLLMServer(SHIPPED_MODEL_DIR, tmp_path / f"vllm-{len(started)}.log")
        started.append(server)
        return server.start()

    try:
        yield _spawn
    finally:
        for server in started:
            server.stop()


def _train(directory: Path) -> Path:
    """A user who accepts SOCIALIZE; trained just enough that the test prompt's answer is a mixed
    distribution (~0.87 / 0.11 / 0.02), where a backend mismatch would show, not a saturated one."""
    examples = []
    for i in range(8):
        history, current = make_history(4 + i, seed=50 + i)
        prompt = render_prompt(history, current, window_days=7)
        examples.append(Example(prompt, prompt, 7, True, 0.5))
    config = FinetuneConfig(epochs=2, batch_size=8, lr=9e-3, seed=1, distill_weight=0.0)
    finetune(examples, directory, config)
    return directory


async def _completed_requests(server: VLLMServer) -> float:
    """vLLM's own count of finished requests (its Prometheus ``/metrics``), over every label."""
    async with httpx.AsyncClient(base_url=server.root, timeout=10.0) as http:
        text = (await http.get("/metrics")).text
    rows = [line for line in text.splitlines() if line.startswith("vllm:request_success_total")]
    assert rows, "vLLM exports no vllm:request_success_total"
    return sum(float(line.rsplit(" ", 1)[1]) for line in rows)


async def test_vllm_and_local_agree_and_a_restarted_vllm_gets_the_adapter_back(
    settings: Settings,
    create_user: CreateUser,
    db_session: AsyncSession,
    spawn: Callable[[], VLLMServer],
    tmp_path: Path,
) -> None:
    user_id, _ = await create_user()
    name = deploy.adapter_name(user_id, 2026, 49)
    path = await asyncio.to_thread(_train, tmp_path / "adapters" / name)
    db_session.add(
        Adapter(
            user_id=user_id,
            name=name,
            version=202649,
            base_model=base_model_version(),
            uri=str(path),
            status=AdapterStatus.ACTIVE,
        )
    )
    await db_session.commit()
    history, current = make_history(20, seed=9)
    prompt = render_prompt(history[-8:], current, window_days=7)

    local = EmbeddedBackend(await asyncio.to_thread(LocalPolicyModel.load))
    try:
        on_local = await local.decide(
            PolicyInput(prompt, history, current, adapter=name, adapter_uri=str(path))
        )
        base_local = await local.decide(PolicyInput(prompt, history, current))
    finally:
        await local.aclose()
    assert on_local.adapter == name
    assert float(np.abs(on_local.probabilities - base_local.probabilities).max()) > 0.05

    for restart in range(2):
        server = await asyncio.to_thread(spawn)
        ft = make_settings(settings.database_url, policy_backend=PolicyBackend.VLLM, vllm_url=server.url)
        assert name not in await asyncio.to_thread(deploy.listed, ft)
        completed = await _completed_requests(server)
        with task_session(ft.sync_database_url) as session:
            assert await asyncio.to_thread(service.reconcile, session, ft) == {"loaded": 1, "unloaded": 0}
        assert name in await asyncio.to_thread(deploy.listed, ft)
        # Loading warmed the adapter with one decision (its first request is slow on CPU), off the request
        # path: exactly one completion ran on the server.
        assert await _completed_requests(server) == completed + 1
        async with httpx.AsyncClient(base_url=server.root, timeout=60.0) as http:
            on_vllm = await VLLMBackend(http).decide(PolicyInput(prompt, history, current, adapter=name))
        assert on_vllm.adapter == name, f"restart {restart}"
        assert float(np.abs(on_vllm.probabilities - on_local.probabilities).max()) < 1e-3
        server.kill()

"""``rhythm simulate`` with the real vLLM CPU server behind the API, crashed and restarted mid-run (issue 16's
soak fault "restart vLLM"): while it is down every recommendation is still answered (by the fallback policy,
never a 5xx), every push and every answer is kept, and once it is back it serves again.

One small run (2 people, a week of device data and a week of recommendations): vLLM takes half a minute or
more to start on 2 cores, twice here. That a restarted vLLM gets its users' adapters back is
``tests/finetune/test_vllm_adapters.py``'s (a sweep does not fit this test's budget); the simulation's own
check of it (``vllm_adapter_books``) runs here on no adapters, and is held to the ops API's view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.benchmarks.calendar_api import CalendarApi
from app.benchmarks.provider_api import RecordApi
from app.benchmarks.vllm_server import VLLMServer, ensure_venv
from app.simulate import report as reports
from app.simulate.cli import vllm_adapter_books
from app.simulate.faults import FaultPlan
from app.simulate.runner import SimConfig, SimResult, Simulation
from app.simulate.stack import BIN, Stack
from policy.paths import SHIPPED_MODEL_DIR
from tests.simulate.stacks import running_stack

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(not (BIN / "rhythm").exists(), reason="needs the rhythm console script"),
]
# The API's circuit breaker probes vLLM again this long after its last failure (RHYTHM_POLICY_COOLDOWN).
COOLDOWN_S = 3


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    ensure_venv()
    server = VLLMServer(SHIPPED_MODEL_DIR, tmp_path_factory.mktemp("vllm") / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, vllm: VLLMServer) -> Iterator[Stack]:
    whoop, calendar = RecordApi(), CalendarApi()
    with whoop.serving(), calendar.serving() as calendar_base:
        settings = {
            "RHYTHM_POLICY_BACKEND": "vllm",
            "RHYTHM_VLLM_URL": vllm.url,
            "RHYTHM_VLLM_MODEL": vllm.name,
            "RHYTHM_POLICY_COOLDOWN": f"PT{COOLDOWN_S}S",
        }
        with running_stack(tmp_path_factory.mktemp("stack"), whoop, calendar_base, **settings) as running:
            yield running


def test_nothing_is_lost_and_the_fallback_answers_while_vllm_restarts(stack: Stack, vllm: VLLMServer) -> None:
    config = SimConfig(
        stack.base_url,
        stack.env["RHYTHM_ADMIN_TOKEN"],
        stack.env["RHYTHM_TERRA_WEBHOOK_SECRET"],
        users=2,
        weeks=1,
        warmup_weeks=1,
        seed=13,
        drain_timeout=60.0,
    )
    # Days 0-6 are device data only; vLLM dies on day 9 and the simulation waits for it on day 12.
    plan = FaultPlan(
        stack,
        kill_worker_on=-1,
        restart_api_on=-1,
        vllm=vllm,
        restart_vllm_on=9,
        vllm_back_by=12,
        vllm_cooldown_s=COOLDOWN_S + 1,
    )

    async def run() -> tuple[SimResult, dict[str, object]]:
        simulation = Simulation(config, on_day=plan.on_day, before_books=plan.finish)
        result = await simulation.run()
        return result, await vllm_adapter_books(vllm, result.people, config, wait_s=5.0)

    result, adapters = asyncio.run(run())
    assert [e["fault"] for e in plan.events] == ["SIGKILL vLLM", "vLLM restarted"]
    books = result.books
    assert books["recommendations"] == 2 * 28 and books["recommend_failed"] == 0
    assert books["feedback_stored"] == books["feedback_sent"] == 2 * 28 and books["lost_feedback"] == 0
    assert books["deliveries_acknowledged"] == books["deliveries_sent"] == books["inbox_events"]
    assert books["lost_deliveries"] == books["unhandled_events"] == books["duplicated_events"] == 0
    assert result.calls.server_errors == []
    assert all(row["5xx"] == 0 for row in reports.endpoints(result).values())
    by_backend = plan.backends_report(result.ledger.backends)
    # Down: the fallback answered (days 9-11, 12 slots of 2 people, minus any served before the kill).
    assert by_backend["during_vllm_restart"].get("fallback", 0) > 0
    # Up: vLLM answered before the crash and again after the restart (and the breaker's cooldown).
    (_, back) = plan.vllm_windows[0]
    assert by_backend["otherwise"].get("vllm", 0) > 0
    assert any(backend == "vllm" and at > back for at, backend in result.ledger.backends)
    assert adapters == {
        "active_adapters": 0,
        "listed_by_vllm": 0,
        "missing_from_vllm": [],
        "waited_s": adapters["waited_s"],
    }

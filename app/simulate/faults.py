"""The soak's fault schedule (``rhythm simulate --faults``): while the simulation runs, SIGKILL the Celery
worker and start a new one, restart the API, crash and restart the vLLM server (with ``--vllm``), and (when
some people wear WHOOP) make WHOOP's API answer 429/503 for a window; afterwards tell the 5xx seen inside an
API restart window from those outside (which must be none).

While vLLM is down the API answers with its fallback policy (``backend: fallback``), never an error: those
answers are counted per window. A restarted vLLM has forgotten every runtime LoRA adapter; the worker's
reconcile loads the active ones again (the books compare its list with the active adapters).

The outage is on the provider's side, so the app's clients see no error from it: the worker's fetches are
refused, its in-task retries (``Retry-After``) run out, and the inbox retries the event later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.benchmarks.provider_api import Outage, RecordApi
from app.benchmarks.vllm_server import VLLMServer
from app.simulate.stack import Stack

# 5xx seen this long after an API restart finished still count as the restart's (in-flight connections).
RESTART_SLACK_S = 2.0
WORKER_DOWN_S = 3.0


@dataclass
class FaultPlan:
    """Which simulated day triggers which fault; ``events`` records what happened and when (Unix time)."""

    stack: Stack
    kill_worker_on: int
    restart_api_on: int
    # The provider API to break (WHOOP's, when anybody wears one), on which day, for how long.
    provider_api: RecordApi | None = None
    provider_outage_on: int | None = None
    outage_s: float = 60.0
    # The model server to crash and restart (``--vllm``), on which day.
    vllm: VLLMServer | None = None
    restart_vllm_on: int | None = None
    # The day the simulation waits for the restarted vLLM (the days between are served by the fallback).
    vllm_back_by: int | None = None
    # The API's circuit breaker keeps answering with the fallback this long after vLLM's last failure
    # (RHYTHM_POLICY_COOLDOWN): waited out too, so the days after ``vllm_back_by`` are vLLM's again.
    vllm_cooldown_s: float = 0.0
    vllm_windows: list[tuple[float, float]] = field(default_factory=list)
    vllm_back_at: float = 0.0
    outages: list[Outage] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)
    # Counts our inbox events not yet handled (the simulation's), to show the kill hit work in flight.
    open_events: Callable[[], Awaitable[int]] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _vllm_task: asyncio.Task[None] | None = None

    @classmethod
    def spread(
        cls,
        stack: Stack,
        days: int,
        provider_api: RecordApi | None = None,
        outage_s: float = 60.0,
        vllm: VLLMServer | None = None,
        vllm_cooldown_s: float = 0.0,
    ) -> FaultPlan:
        """Faults a third and two thirds of the way through the run (after any warm-up data exists); the
        provider outage half-way, between the two; the vLLM restart five sixths of the way, late enough that
        the weekly sweeps before it have deployed adapters for it to forget."""
        return cls(
            stack,
            kill_worker_on=max(1, days // 3),
            restart_api_on=max(2, 2 * days // 3),
            provider_api=provider_api,
            provider_outage_on=max(1, days // 2) if provider_api is not None else None,
            outage_s=outage_s,
            vllm=vllm,
            restart_vllm_on=max(1, 5 * days // 6) if vllm is not None else None,
            vllm_back_by=max(1, 5 * days // 6) + 1 if vllm is not None else None,
            vllm_cooldown_s=vllm_cooldown_s,
        )

    async def on_day(self, day: int) -> None:
        if day == self.kill_worker_on:
            self._tasks.append(asyncio.create_task(self._kill_worker()))
        if day == self.restart_api_on:
            self._tasks.append(asyncio.create_task(self._restart_api()))
        if day == self.restart_vllm_on and self.vllm is not None:
            self._vllm_task = asyncio.create_task(self._restart_vllm())
            self._tasks.append(self._vllm_task)
        back_by = self.vllm_back_by
        if (
            self._vllm_task is not None
            and back_by is not None
            and day == max(back_by, self.restart_vllm_on or 0)
        ):
            # Days go faster than vLLM starts on 2 cores: wait, so the last days show it serving again; then
            # the breaker's cooldown, counted from the restart's end.
            await self._vllm_task
            await asyncio.sleep(max(0.0, self.vllm_back_at + self.vllm_cooldown_s - time.time()))
        if day == self.provider_outage_on and self.provider_api is not None:
            # Right after the morning's notifications were acknowledged: their fetches meet the outage.
            window = self.provider_api.outage(self.outage_s)
            self.outages.append(window)
            self.events.append({"fault": "provider API outage", "at": window.start, "until": window.end})

    def outage_report(self) -> list[dict[str, Any]]:
        """Each outage window and the refusals the provider API answered inside it (the retries it caused)."""
        return [
            {
                "start": o.start,
                "end": o.end,
                "seconds": round(o.end - o.start, 1),
                "retry_after_s": o.retry_after_s,
                "refused": {str(status): n for status, n in sorted(o.answers.items())},
            }
            for o in self.outages
        ]

    async def _kill_worker(self) -> None:
        # Right after the morning's pushes were acknowledged: the worker is processing them when it dies.
        open_before = await self.open_events() if self.open_events else None
        pid = self.stack.kill_worker()
        self.events.append(
            {"fault": "SIGKILL worker", "pid": pid, "at": time.time(), "our_events_open": open_before}
        )
        await asyncio.sleep(WORKER_DOWN_S)
        self.stack.start_worker()
        self.events.append({"fault": "worker restarted", "at": time.time()})

    async def _restart_api(self) -> None:
        started = time.time()
        await asyncio.to_thread(self.stack.restart_api)
        finished = time.time()
        self.windows.append((started, finished + RESTART_SLACK_S))
        self.events.append({"fault": "API restarted", "down_s": round(finished - started, 2), "at": started})

    async def _restart_vllm(self) -> None:
        assert self.vllm is not None
        started = time.time()
        self.events.append({"fault": "SIGKILL vLLM", "at": started})
        await asyncio.to_thread(self.vllm.restart)
        finished = time.time()
        self.vllm_windows.append((started, finished + RESTART_SLACK_S))
        self.vllm_back_at = finished
        self.events.append({"fault": "vLLM restarted", "down_s": round(finished - started, 2), "at": started})

    def backends_report(self, backends: list[tuple[float, str]]) -> dict[str, Any]:
        """Who answered the recommendations inside the vLLM restart windows and outside them."""
        inside: dict[str, int] = {}
        outside: dict[str, int] = {}
        for at, backend in backends:
            into = inside if any(lo <= at <= hi for lo, hi in self.vllm_windows) else outside
            into[backend] = into.get(backend, 0) + 1
        return {"during_vllm_restart": inside, "otherwise": outside}

    async def finish(self) -> None:
        await asyncio.gather(*self._tasks)

    def outside_restarts(self, server_errors: list[tuple[float, str, int]]) -> list[tuple[float, str, int]]:
        return [e for e in server_errors if not any(lo <= e[0] <= hi for lo, hi in self.windows)]

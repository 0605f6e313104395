"""The soak's fault schedule (``rhythm simulate --faults``): while the simulation runs, SIGKILL the Celery
worker and start a new one, restart the API, and (when some people wear WHOOP) make WHOOP's API answer
429/503 for a window; afterwards tell the 5xx seen inside a restart window from those outside (which must be
none).

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
    outages: list[Outage] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)
    # Counts our inbox events not yet handled (the simulation's), to show the kill hit work in flight.
    open_events: Callable[[], Awaitable[int]] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def spread(
        cls, stack: Stack, days: int, provider_api: RecordApi | None = None, outage_s: float = 60.0
    ) -> FaultPlan:
        """Faults a third and two thirds of the way through the run (after any warm-up data exists); the
        provider outage half-way, between the two."""
        return cls(
            stack,
            kill_worker_on=max(1, days // 3),
            restart_api_on=max(2, 2 * days // 3),
            provider_api=provider_api,
            provider_outage_on=max(1, days // 2) if provider_api is not None else None,
            outage_s=outage_s,
        )

    async def on_day(self, day: int) -> None:
        if day == self.kill_worker_on:
            self._tasks.append(asyncio.create_task(self._kill_worker()))
        if day == self.restart_api_on:
            self._tasks.append(asyncio.create_task(self._restart_api()))
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

    async def finish(self) -> None:
        await asyncio.gather(*self._tasks)

    def outside_restarts(self, server_errors: list[tuple[float, str, int]]) -> list[tuple[float, str, int]]:
        return [e for e in server_errors if not any(lo <= e[0] <= hi for lo, hi in self.windows)]

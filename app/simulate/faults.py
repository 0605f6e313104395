"""The soak's fault schedule (``rhythm simulate --faults``): while the simulation runs, SIGKILL the Celery
worker and start a new one, and restart the API; afterwards tell the 5xx seen inside a restart window from
those outside (which must be none).

Provider outages (429/5xx from a provider's API) need a provider we fetch from after a notification; the
simulation's wearable is Terra, which pushes the data itself, so there is no provider API to break here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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
    events: list[dict[str, Any]] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)
    # Counts our inbox events not yet handled (the simulation's), to show the kill hit work in flight.
    open_events: Callable[[], Awaitable[int]] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def spread(cls, stack: Stack, days: int) -> FaultPlan:
        """Faults a third and two thirds of the way through the run (after any warm-up data exists)."""
        return cls(stack, kill_worker_on=max(1, days // 3), restart_api_on=max(2, 2 * days // 3))

    async def on_day(self, day: int) -> None:
        if day == self.kill_worker_on:
            self._tasks.append(asyncio.create_task(self._kill_worker()))
        if day == self.restart_api_on:
            self._tasks.append(asyncio.create_task(self._restart_api()))

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

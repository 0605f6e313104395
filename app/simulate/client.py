"""The simulation's HTTP client: every call timed and counted per endpoint, retried the way a real client or
provider would (a lost connection, 429 or 5xx is tried again with backoff), and every 5xx remembered with
the moment it was seen so a fault run can tell which fell inside an API restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass
class Calls:
    """Per endpoint: latencies (ms) of answered attempts, status counts, transport errors, 5xx moments."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    transport_errors: Counter[str] = field(default_factory=Counter)
    server_errors: list[tuple[float, str, int]] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    gave_up: Counter[str] = field(default_factory=Counter)


class Api:
    """An ``httpx.AsyncClient`` on ``base_url`` with at most ``concurrency`` requests in flight."""

    def __init__(self, base_url: str, *, concurrency: int = 8, retry_for: float = 120.0) -> None:
        self.calls = Calls()
        self._client = httpx.AsyncClient(base_url=base_url, timeout=30.0)
        self._gate = asyncio.Semaphore(concurrency)
        self._retry_for = retry_for

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | Callable[[], dict[str, str]] | None = None,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response | None:
        """The final answer (``None`` when every attempt failed in transport). ``headers`` may be a function:
        called per attempt, so a webhook is signed afresh on each retry, as a provider does."""
        deadline = time.monotonic() + self._retry_for
        delay = 0.2
        while True:
            sent = headers() if callable(headers) else headers
            started = time.perf_counter()
            response: httpx.Response | None = None
            try:
                async with self._gate:
                    response = await self._client.request(
                        method, url, headers=sent, json=json, content=content, params=params
                    )
            except httpx.TransportError:
                self.calls.transport_errors[endpoint] += 1
            if response is not None:
                status = response.status_code
                self.calls.latencies[endpoint].append((time.perf_counter() - started) * 1000.0)
                self.calls.statuses[endpoint][status] += 1
                if status >= 500:
                    self.calls.server_errors.append((time.time(), endpoint, status))
                if status not in RETRY_STATUSES:
                    return response
            if time.monotonic() + delay > deadline:
                self.calls.gave_up[endpoint] += 1
                return response
            self.calls.retries[endpoint] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

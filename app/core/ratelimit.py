"""Rate limits on the public API (OWASP API4): per token for authenticated calls, per client IP for the rest.

A pure ASGI middleware in front of routing, so that floods are refused before any database work, and so that
every route (unknown paths and the docs included) is covered except the probes and metrics in
``EXEMPT_PATHS`` and the signed provider webhooks in ``EXEMPT_PREFIXES``. Counting uses the maintained
``limits`` package (moving window) on memory storage by default or Redis (``RHYTHM_RATE_LIMIT_STORAGE_URL``),
shared between API processes.

Keys: a request with a bearer token is counted under the token's SHA-256 (never the token itself); any other
request under its client IP. Keying by token alone would let a client dodge every limit by sending a fresh
random token each time, so a request whose token the API rejects (401) is also charged to its IP, and while
that IP's budget of failures is spent, its requests with tokens are refused too.

The limiter fails open: if the storage is down or slow, requests pass (counted in Prometheus) rather than
turning a Redis outage into an API outage.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import ConnectionPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.errors import ErrorResponse, error_payload
from app.core.security import hash_token

log = structlog.get_logger(__name__)

# Probes and scrapes must keep answering under load, or the orchestrator restarts a healthy process.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Provider webhooks arrive in bursts from a few provider IPs and are authenticated by their signatures; a
# per-IP budget would answer a provider's backfill with 429s and delay data the provider then re-sends anyway.
EXEMPT_PREFIXES = ("/v1/webhooks/",)

# A storage round trip normally takes well under a millisecond; waiting longer than this costs every request.
_STORAGE_TIMEOUT_S = 0.5
# After a storage failure, skip the limiter this long instead of paying the timeout on every request.
_STORAGE_BACKOFF_S = 5.0

# For ``include_router(..., responses=RATE_LIMITED_RESPONSES)``: the 429 in the OpenAPI schema.
RATE_LIMITED_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorResponse,
        "description": "Rate limit exceeded (per token, or per client IP without a valid token).",
        "headers": {
            "Retry-After": {
                "description": "Seconds until the request can succeed again.",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: which budget (``token``, ``ip``, ``auth_failures``) and when to retry."""

    scope: str
    limit: RateLimitItem
    retry_after: int


def _storage(url: str) -> tuple[Storage, ConnectionPool | None]:
    scheme = url.partition("://")[0]
    if scheme == "memory":
        return MemoryStorage(), None
    # Our own pool: redis-py is already a dependency (the broker), its timeouts are ours to set, and the
    # pool can be closed when the app stops.
    pool = ConnectionPool.from_url(
        url, socket_timeout=_STORAGE_TIMEOUT_S, socket_connect_timeout=_STORAGE_TIMEOUT_S
    )
    # limits documents connection_pool, but types its options as scalars only.
    options: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(f"async+{url}", implementation="redispy", wrap_exceptions=True, **options)
    return storage, pool


class RateLimiter:
    """The budgets of one app, on one storage, with their Prometheus counters in the app's registry."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.per_token = parse_many(settings.rate_limit_per_token)
        self.per_ip = parse_many(settings.rate_limit_per_ip)
        self.storage, self._pool = _storage(settings.rate_limit_storage_url)
        self._strategy = MovingWindowRateLimiter(self.storage)
        self._skip_until = 0.0
        self.refused = Counter(
            "rhythm_rate_limited_requests",
            "Requests refused with 429, by the budget that ran out.",
            ["scope"],
            registry=registry,
        )
        self.storage_errors = Counter(
            "rhythm_rate_limit_storage_errors",
            "Rate limit storage failures; the requests concerned were let through.",
            registry=registry,
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    async def admit(self, token: str | None, ip: str) -> Refusal | None:
        """Charge the request to its budget; a :class:`Refusal` if a budget is spent, else ``None``."""
        if time.monotonic() < self._skip_until:
            return None
        try:
            async with asyncio.timeout(_STORAGE_TIMEOUT_S):
                if token is None:
                    return await self._hit("ip", ip, self.per_ip)
                refusal = await self._spent("auth_failures", ip, self.per_ip)
                return refusal or await self._hit("token", hash_token(token), self.per_token)
        except (StorageError, TimeoutError, OSError) as exc:
            self._storage_failed(exc)
            return None

    async def charge_auth_failure(self, ip: str) -> None:
        """A token was rejected: count it against the client IP, as if the request had carried none."""
        if time.monotonic() < self._skip_until:
            return
        try:
            async with asyncio.timeout(_STORAGE_TIMEOUT_S):
                await self._hit("auth_failures", ip, self.per_ip)
        except (StorageError, TimeoutError, OSError) as exc:
            self._storage_failed(exc)

    async def _hit(self, scope: str, key: str, items: list[RateLimitItem]) -> Refusal | None:
        for item in items:
            if not await self._strategy.hit(item, scope, key):
                return await self._refusal(scope, key, item)
        return None

    async def _spent(self, scope: str, key: str, items: list[RateLimitItem]) -> Refusal | None:
        for item in items:
            if not await self._strategy.test(item, scope, key):
                return await self._refusal(scope, key, item)
        return None

    async def _refusal(self, scope: str, key: str, item: RateLimitItem) -> Refusal:
        stats = await self._strategy.get_window_stats(item, scope, key)
        # Whole seconds, rounded up: retrying after Retry-After must succeed, not hit the same window.
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        self.refused.labels(scope).inc()
        return Refusal(scope, item, retry_after)

    def _storage_failed(self, exc: BaseException) -> None:
        self.storage_errors.inc()
        self._skip_until = time.monotonic() + _STORAGE_BACKOFF_S
        # limits wraps the client's exception; name the underlying one (a timeout, a refused connection…).
        cause = exc.storage_error if isinstance(exc, StorageError) else exc
        log.warning(
            "rate_limit_storage_failed",
            error=type(cause).__name__,
            detail=str(cause),
            skip_s=_STORAGE_BACKOFF_S,
        )


def _bearer_token(scope: Scope) -> str | None:
    # The same reading as FastAPI's HTTPBearer: "Bearer <credentials>", scheme case-insensitive, and the
    # first Authorization header as Starlette reads it. Taking another one than authentication does would let
    # a client authenticate with one token and be counted under a fresh random one.
    raw = next((value for name, value in scope["headers"] if name == b"authorization"), None)
    if raw is None:
        return None
    scheme, _, credentials = raw.decode("latin-1").partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


def _client_ip(scope: Scope) -> str:
    # The peer address as the server saw it; behind a proxy, uvicorn's --proxy-headers (with
    # --forwarded-allow-ips) puts the real client here. X-Forwarded-For is not read: clients can forge it.
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Answers 429 with ``Retry-After`` in the one error shape once the caller's budget is spent."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        ip = _client_ip(scope)
        refusal = await self.limiter.admit(token, ip)
        if refusal is not None:
            await _reject(send, refusal)
            return
        status = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_with_status)
        if token is not None and status == 401:
            await self.limiter.charge_auth_failure(ip)


_SCOPE_WORDS = {
    "token": "per token",
    "ip": "per client IP",
    "auth_failures": "of rejected tokens per client IP",
}


async def _reject(send: Send, refusal: Refusal) -> None:
    message = (
        f"Rate limit exceeded: {refusal.limit} {_SCOPE_WORDS[refusal.scope]};"
        f" retry in {refusal.retry_after} s"
    )
    details = {"scope": refusal.scope, "limit": str(refusal.limit), "retry_after": refusal.retry_after}
    body = json.dumps(error_payload(429, message, details=details)).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(refusal.retry_after).encode()),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": 429, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})

"""Pure ASGI middlewares: request id + access log + metrics, and the request body size cap."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import error_payload

log = structlog.get_logger("rhythm.access")

_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Metrics:
    """Prometheus metrics of one app, in its own registry so tests and apps never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rhythm_http_requests",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rhythm_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            registry=self.registry,
        )


def _route_template(scope: Scope) -> str:
    # The template ("/v1/users/{user_id}"), never the raw path: raw paths carry IDs and explode cardinality.
    route = scope.get("route")
    # path_format drops convertors ("{user_id:uuid}" → "{user_id}"), as in the OpenAPI paths.
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    """Gives each request an id (``X-Request-ID``) bound to every log line; logs and measures the request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
        # Also kept on the request's state: an unhandled exception's 500 is sent by Starlette's outermost
        # error middleware, past this one, and its handler must still be able to name the request.
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                self.metrics.requests.labels(scope["method"], route, str(status)).inc()
                self.metrics.latency.labels(scope["method"], route).observe(elapsed)
                log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, also for chunked bodies without Content-Length.

    A declared Content-Length over the cap is refused before reading anything. Otherwise the body is counted
    while the app reads it; crossing the cap raises an ``HTTPException(413)`` from ``receive``, which FastAPI
    passes on to the error handlers (it re-raises HTTPExceptions raised while reading the body).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = False
            if too_large:
                await self._reject(send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counting_receive, send)

    def _message(self) -> str:
        return f"Request body exceeds {self.max_bytes} bytes"

    async def _reject(self, send: Send) -> None:
        body = json.dumps(error_payload(413, self._message())).encode()
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        start: dict[str, Any] = {"type": "http.response.start", "status": 413, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": body})

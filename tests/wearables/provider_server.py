"""A local HTTP server that answers as a provider's REST API and OAuth token endpoint do, from a script.

Each ``(method, path)`` has a queue of answers; the last one repeats. Every request is recorded (path, query,
bearer token) so tests can assert what the client sent. Binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    bearer: str | None
    form: dict[str, str]


class ProviderServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.seen: list[Seen] = []
        self.url = ""
        self._lock = threading.Lock()

    def on(self, method: str, path: str, *answers: Answer) -> None:
        with self._lock:
            self.routes[(method, path)] = list(answers)

    def json(self, path: str, body: Any, status: int = 200, **headers: str) -> None:
        self.on("GET", path, Answer(status, body, headers))

    def requests_to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def answer(self, method: str, path: str) -> Answer:
        with self._lock:
            queue = self.routes.get((method, path))
            if not queue:
                return Answer(404, {"message": "not found"})
            return queue.pop(0) if len(queue) > 1 else queue[0]


def _handler(server: ProviderServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            auth = self.headers.get("authorization") or ""
            server.seen.append(
                Seen(
                    method=method,
                    path=parts.path,
                    query={k: v[0] for k, v in parse_qs(parts.query).items()},
                    bearer=auth[7:] if auth.startswith("Bearer ") else None,
                    form={k: v[0] for k, v in parse_qs(raw).items()},
                )
            )
            answer = server.answer(method, parts.path)
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def provider_server() -> Iterator[ProviderServer]:
    state = ProviderServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def token_answer(access: str, refresh: str = "refresh-2") -> Answer:
    return Answer(
        200,
        {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": 3600},
    )

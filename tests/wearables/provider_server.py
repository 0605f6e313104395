"""A local HTTP server that answers as a provider's REST API and OAuth token endpoint do, from a script.

Each ``(method, path)`` has a queue of answers; the last one repeats. Every request is recorded (path, query,
bearer token) so tests can assert what the client sent. Binds 127.0.0.1 on a free port. The HTTP plumbing is
the benchmark's (``app.benchmarks.provider_api``): one server for both, only the answers differ.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.benchmarks.provider_api import Answer, LocalApi, Seen, local_api

__all__ = ["Answer", "ProviderServer", "Seen", "provider_server", "token_answer"]


class ProviderServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.url = ""
        self._api: LocalApi | None = None
        self._lock = threading.Lock()

    @property
    def seen(self) -> list[Seen]:
        assert self._api is not None, "the server is not running"
        return self._api.seen

    def on(self, method: str, path: str, *answers: Answer) -> None:
        with self._lock:
            self.routes[(method, path)] = list(answers)

    def json(self, path: str, body: object, status: int = 200, **headers: str) -> None:
        self.on("GET", path, Answer(status, body, headers))

    def requests_to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def answer(self, method: str, path: str) -> Answer:
        with self._lock:
            queue = self.routes.get((method, path))
            if not queue:
                return Answer(404, {"message": "not found"})
            return queue.pop(0) if len(queue) > 1 else queue[0]


@contextmanager
def provider_server() -> Iterator[ProviderServer]:
    state = ProviderServer()
    with local_api(lambda seen: state.answer(seen.method, seen.path)) as api:
        state.url = api.url
        state._api = api
        yield state


def token_answer(access: str, refresh: str = "refresh-2") -> Answer:
    return Answer(
        200,
        {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": 3600},
    )

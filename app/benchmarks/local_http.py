"""One local HTTP server on a free 127.0.0.1 port, served from a daemon thread.

The stand-ins for third-party services (wearable provider APIs, Google Calendar, an OpenAI-compatible chat
server, a vLLM stub) speak their provider's format over real HTTP; this is the plumbing they share: bind to
port 0, one thread per connection, serve until stopped, then shut down, close and join.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalHttpServer:
    """``start()`` / ``stop()`` (or ``with``) around a ``ThreadingHTTPServer`` on a free local port."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str = "local-http") -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # A client that leaves a connection open must not keep the process alive at exit.
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], name: str = "local-http") -> Iterator[str]:
    """Serve ``handler`` until the block ends; yields the base URL (``http://127.0.0.1:PORT``)."""
    with LocalHttpServer(handler, name) as server:
        yield server.base_url

"""A spawned Rhythm stack for the simulate tests (API, worker and beat as processes on a database of its
own), pointed at this module's local provider APIs; the tests choose the policy backend."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from app.benchmarks.provider_api import RecordApi
from app.simulate.stack import Stack
from tests.support import broker_url, temporary_postgres_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_stack(logs: Path, whoop_api: RecordApi, calendar_base: str, **settings: str) -> Iterator[Stack]:
    """Start the stack with ``RHYTHM_*`` ``settings`` on top of the test defaults; stop it and remove its
    broker keys afterwards."""
    port = free_port()
    assert whoop_api.api is not None
    with temporary_postgres_database("rhythm_sim") as database:
        env = {key: value for key, value in os.environ.items() if not key.startswith("RHYTHM_")}
        env.update(
            {
                "RHYTHM_ENV": "test",
                "RHYTHM_DATA_DIR": str(logs),
                "RHYTHM_DATABASE_URL": database,
                "RHYTHM_BROKER_URL": broker_url(),
                "RHYTHM_BROKER_KEY_PREFIX": f"rhythm-sim-{secrets.token_hex(6)}:",
                "RHYTHM_ADMIN_TOKEN": secrets.token_urlsafe(32),
                "RHYTHM_SECRET_KEY": secrets.token_urlsafe(32),
                "RHYTHM_TERRA_WEBHOOK_SECRET": "terra-sim-" + secrets.token_hex(16),
                "RHYTHM_WHOOP_CLIENT_SECRET": "whoop-sim-" + secrets.token_hex(16),
                "RHYTHM_WHOOP_API_BASE_URL": whoop_api.api.url,
                "RHYTHM_WHOOP_TOKEN_URL": f"{whoop_api.api.url}/oauth/token",
                "RHYTHM_GOOGLE_CLIENT_ID": "sim.apps.googleusercontent.com",
                "RHYTHM_GOOGLE_CLIENT_SECRET": "google-sim-" + secrets.token_hex(16),
                "RHYTHM_GOOGLE_API_BASE_URL": calendar_base,
                "RHYTHM_GOOGLE_TOKEN_URL": f"{calendar_base}/token",
                "RHYTHM_POLICY_BACKEND": "fallback",
                "RHYTHM_PORT": str(port),
                "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                **settings,
            }
        )
        running = Stack(env, logs, port)
        try:
            running.start()
            yield running
        finally:
            running.stop()
            # Leave no messages or beat state of this stack in the shared Redis.
            client = redis.Redis.from_url(broker_url())
            keys = list(client.scan_iter(match=f"{env['RHYTHM_BROKER_KEY_PREFIX']}*"))
            if keys:
                client.delete(*keys)


def sync_url(stack: Stack) -> str:
    return stack.env["RHYTHM_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)


__all__ = ["free_port", "running_stack", "sync_url"]

"""Readiness tells the truth about the background processes: real ``celery worker`` and ``celery beat``
processes stamp heartbeats, ``/readyz`` reports their age, and killing them shows (worker: 503, beat:
degraded).

Both processes use kombu's SQLAlchemy transport on a SQLite file (the broker of ``make run``, which has no
remote control: the reason heartbeats exist) and the test Postgres database for their heartbeats.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from tests.support import app_client, celery_process, running_app

STALE_AFTER_S = 4.0


@pytest.fixture
def processes(settings: Settings, clean_database: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real worker and a real beat, heartbeating every second."""
    queue = f"rhythm-test-{secrets.token_hex(6)}"
    env = {
        **os.environ,
        "RHYTHM_ENV": "test",
        "RHYTHM_DATABASE_URL": settings.database_url,
        "RHYTHM_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
        "RHYTHM_HEARTBEAT_INTERVAL": "1",
    }
    worker_args = ["worker", "--pool", "solo", "-Q", queue, "-n", f"{queue}@%h"]
    worker_args += ["--without-mingle", "--without-gossip"]
    beat_args = ["beat", "--schedule", str(tmp_path / "celerybeat-schedule"), "-l", "INFO"]
    with (
        celery_process(worker_args, env, tmp_path / "worker.log") as worker,
        celery_process(beat_args, env, tmp_path / "beat.log") as beat,
    ):
        yield {"worker": worker, "beat": beat}


async def _wait_for(
    client: httpx.AsyncClient, condition: Callable[[httpx.Response], bool], timeout_s: float
) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get("/readyz")
        if condition(response) or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.5)


def _liveness(response: httpx.Response, kind: str) -> dict[str, Any]:
    body = response.json()
    source = body["error"]["details"] if response.status_code == 503 else body
    return dict(source[kind])


# kombu's SQLAlchemy transport still uses a loader option SQLAlchemy 2.1 deprecates; harmless for us.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
async def test_readyz_follows_worker_and_beat_heartbeats(
    settings: Settings, processes: dict[str, Any]
) -> None:
    strict = settings.model_copy(
        update={"readiness_requires_worker": True, "heartbeat_stale_after": timedelta(seconds=STALE_AFTER_S)}
    )
    async with running_app(strict) as app, app_client(app) as client:
        # Alive: both report fresh heartbeats and readiness is plainly ok.
        alive = await _wait_for(client, lambda r: r.status_code == 200 and r.json()["status"] == "ok", 90)
        assert alive.status_code == 200, alive.text
        body = alive.json()
        assert body["status"] == "ok"
        for kind in ("worker", "beat"):
            assert body[kind]["alive"] is True
            assert body[kind]["running"] == 1
            assert 0 <= body[kind]["age_s"] < STALE_AFTER_S
            assert body[kind]["stale_after_s"] == STALE_AFTER_S

        # Beat killed (no goodbye): its heartbeat goes stale; readiness degrades but stays 200.
        processes["beat"].send_signal(signal.SIGKILL)
        processes["beat"].wait()
        degraded = await _wait_for(client, lambda r: r.json().get("status") == "degraded", 3 * STALE_AFTER_S)
        assert degraded.status_code == 200, degraded.text
        beat = _liveness(degraded, "beat")
        assert beat["alive"] is False
        assert _liveness(degraded, "worker")["alive"] is True

        # Worker killed too: readiness fails and names the worker, with the age of its last heartbeat.
        processes["worker"].send_signal(signal.SIGKILL)
        processes["worker"].wait()
        failed = await _wait_for(client, lambda r: r.status_code == 503, 3 * STALE_AFTER_S)
        assert failed.status_code == 503, failed.text
        error = failed.json()["error"]
        assert error["code"] == "not_ready"
        assert error["details"]["failed"] == ["worker"]
        worker = error["details"]["worker"]
        assert worker["alive"] is False and worker["running"] == 0
        assert worker["age_s"] is not None and worker["age_s"] >= STALE_AFTER_S
        assert error["details"]["checks"]["database"] is True


async def test_no_heartbeat_ever_is_not_alive(settings: Settings, clean_database: str) -> None:
    """A fresh deployment whose worker never started: 503 with ``worker`` failed; the same app not requiring a
    worker answers 200, degraded (no beat either)."""
    for requires_worker, status in ((True, 503), (False, 200)):
        variant = settings.model_copy(update={"readiness_requires_worker": requires_worker})
        async with running_app(variant) as app, app_client(app) as client:
            response = await client.get("/readyz")
        assert response.status_code == status, response.text
        worker = _liveness(response, "worker")
        assert worker == {**worker, "alive": False, "last_heartbeat_at": None, "age_s": None, "running": 0}
        if status == 200:
            assert response.json()["status"] == "degraded"
        else:
            assert response.json()["error"]["details"]["failed"] == ["worker"]

"""Heartbeats of the worker and of beat, so that ``/readyz`` can tell whether they live.

kombu's SQLAlchemy transport (the broker of ``make run``) has no remote control, so ``celery inspect ping``
is no option; each process stamps its row in ``process_heartbeats`` instead (any broker, one code path).

* Worker: a daemon thread started on ``worker_ready`` stamps every ``RHYTHM_HEARTBEAT_INTERVAL`` and marks the
  row stopped on ``worker_shutdown``. A thread, not a task: a task would measure the queue, not the process.
* Beat: :class:`HeartbeatScheduler` (``beat_scheduler``) stamps from its tick, so a wedged scheduler loop goes
  stale even though the process is still there. It caps beat's sleep at the heartbeat interval, else beat
  would sleep until the next due task (up to an hour here) and look dead in between.

Importing this module connects the worker signals (``workers.celery_app`` does).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import structlog
from celery import signals
from celery.beat import PersistentScheduler
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.core.config import get_settings
from app.models import ProcessKind
from app.models.base import utcnow
from app.ops import repository

log = structlog.get_logger(__name__)

HEARTBEAT_SCHEDULER = "workers.heartbeat:HeartbeatScheduler"


def heartbeat_engine(sync_database_url: str) -> Engine:
    """An engine that keeps no connection between beats.

    NullPool: the worker's pool children are forked from the process this thread runs in, and a pooled
    connection inherited across fork would be shared by two processes. Short timeouts: a beat against an
    unreachable database should fail (and go stale) quickly, not hang the thread or beat's loop.
    """
    if make_url(sync_database_url).get_backend_name() == "sqlite":
        connect_args: dict[str, Any] = {"timeout": 5}
    else:
        connect_args = {"connect_timeout": 5}
    return create_engine(sync_database_url, poolclass=NullPool, connect_args=connect_args)


class Heartbeat:
    """Stamps one process's row; a failing database is logged and retried on the next beat, never raised."""

    def __init__(self, name: str, kind: ProcessKind, sync_database_url: str) -> None:
        self.name = name
        self.kind = kind
        self.pid = os.getpid()
        self.engine = heartbeat_engine(sync_database_url)
        self._started = False

    def beat(self) -> None:
        try:
            # The beat is its own transaction boundary: one commit per stamp.
            with Session(self.engine) as session, session.begin():
                repository.stamp(
                    session, self.name, self.kind, self.pid, utcnow(), starting=not self._started
                )
            self._started = True
        except Exception as exc:  # readiness will report the process stale: that is the signal, not a crash
            log.warning("heartbeat_failed", process=self.name, error=repr(exc))

    def stopped(self) -> None:
        try:
            with Session(self.engine) as session, session.begin():
                repository.mark_stopped(session, self.name, self.pid, utcnow())
        except Exception as exc:
            log.warning("heartbeat_stop_failed", process=self.name, error=repr(exc))
        self.engine.dispose()


class HeartbeatThread:
    """Calls :meth:`Heartbeat.beat` every ``interval_s`` until :meth:`stop`."""

    def __init__(self, heartbeat: Heartbeat, interval_s: float) -> None:
        self.heartbeat = heartbeat
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rhythm-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.heartbeat.beat()
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)
        self.heartbeat.stopped()


_worker_thread: HeartbeatThread | None = None


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _start_worker_heartbeat(sender: Any = None, **_kwargs: Any) -> None:
    global _worker_thread
    settings = get_settings()
    name = str(getattr(sender, "hostname", None) or f"celery@{socket.gethostname()}")
    heartbeat = Heartbeat(name, ProcessKind.WORKER, settings.sync_database_url)
    _worker_thread = HeartbeatThread(heartbeat, settings.heartbeat_interval.total_seconds())
    _worker_thread.start()


@signals.worker_shutdown.connect  # type: ignore[untyped-decorator]
def _stop_worker_heartbeat(**_kwargs: Any) -> None:
    global _worker_thread
    if _worker_thread is not None:
        _worker_thread.stop()
        _worker_thread = None


class HeartbeatScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's default scheduler plus a heartbeat from every tick (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()
        self._interval_s = settings.heartbeat_interval.total_seconds()
        self._heartbeat = Heartbeat(
            f"beat@{socket.gethostname()}", ProcessKind.BEAT, settings.sync_database_url
        )
        self._next_beat = 0.0
        super().__init__(*args, **kwargs)
        ceiling: Any = self.max_interval  # type: ignore[has-type]
        self.max_interval = min(float(ceiling), self._interval_s)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now >= self._next_beat:
            self._heartbeat.beat()
            self._next_beat = now + self._interval_s
        return float(super().tick(*args, **kwargs))

    def close(self) -> None:
        super().close()
        self._heartbeat.stopped()

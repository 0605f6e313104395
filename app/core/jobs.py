"""Enqueue Celery jobs only after the commit that makes their rows visible (STYLE.md habit 3).

A producer (service) calls :func:`enqueue` with the request's or task's session; the job waits in
``session.info`` and is sent by the session's ``after_commit`` event, once per commit. A rollback drops it.
Without this, a worker could start before the commit and find no row, or act on a row that was rolled back
(Celery docs, "Database transactions"; Polar buffers its jobs the same way).

:func:`send` is the one other way out, for a producer that has no transaction and no row to wait for (a
worker's start-up signal); it publishes at once through the same code. Nothing else in the tree calls
``send_task`` / ``delay`` / ``apply_async`` (``tests/test_architecture.py`` fails if something does), so every
message carries the routing of ``app.core.tasks`` and every database-backed job waits for its commit.

The send is a short synchronous publish (local Redis: well under a millisecond once connected). If the broker
is down the commit still stands and the error is logged: work that must not be lost keeps its state in the
database (e.g. an unhandled inbox row), and a beat sweeper enqueues it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from celery import Celery
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.tasks import celery_for

log = structlog.get_logger(__name__)

_PENDING = "rhythm.pending_jobs"


@dataclass(frozen=True, slots=True)
class Job:
    """A task to send by name; the queue comes from the routing in ``app.core.tasks``."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Seconds to hold the task before it runs (e.g. to let a burst of notifications settle); None: at once.
    countdown: float | None = None


def _sync(session: Session | AsyncSession) -> Session:
    return session.sync_session if isinstance(session, AsyncSession) else session


def enqueue(session: Session | AsyncSession, settings: Settings, job: Job) -> None:
    """Send ``job`` after ``session`` commits; nothing is sent if it rolls back."""
    pending: list[tuple[Celery, Job]] = _sync(session).info.setdefault(_PENDING, [])
    pending.append((celery_for(settings), job))


def send(celery: Celery, job: Job) -> None:
    """Send ``job`` now through ``celery``: only for a producer with no transaction whose rows the job would
    need (a worker's start-up signal sends through the worker's own app). Inside a transaction use
    :func:`enqueue`. A broker failure is logged, not raised."""
    _publish(celery, job)


def _publish(celery: Celery, job: Job) -> None:
    try:
        celery.send_task(job.name, args=list(job.args), kwargs=job.kwargs, countdown=job.countdown)
    except Exception as exc:  # a commit stands; beat's sweepers re-send what its rows still say is due
        log.error("job_enqueue_failed", task=job.name, error=type(exc).__name__)


def pending_jobs(session: Session | AsyncSession) -> list[Job]:
    """The jobs waiting for the session's commit (for diagnostics and tests)."""
    return [job for _, job in _sync(session).info.get(_PENDING, [])]


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    for celery, job in session.info.pop(_PENDING, []):
        _publish(celery, job)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)

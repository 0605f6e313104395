"""Readiness checks: is each dependency reachable right now, and do the background processes live?"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from kombu.connection import Connection
from sqlalchemy import text

from app.core import migrate
from app.core.db import Database
from app.models import ProcessKind
from app.models.base import utcnow
from app.ops import repository
from app.ops.schemas import ProcessLivenessPublic

log = structlog.get_logger(__name__)


async def database_ready(db: Database) -> bool:
    async with db.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True


def _broker_ready_sync(broker_url: str, timeout: float) -> bool:
    with Connection(broker_url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=timeout)
    return True


async def broker_ready(broker_url: str, limit_s: float) -> bool:
    # kombu is synchronous; a thread keeps the event loop free while it connects.
    return await asyncio.to_thread(_broker_ready_sync, broker_url, limit_s)


async def process_liveness(
    db: Database, kind: ProcessKind, stale_after: timedelta, limit_s: float
) -> ProcessLivenessPublic:
    """Liveness of workers or beat from their heartbeat rows; an unreadable table reads as not alive."""
    now = utcnow()
    stale_s = stale_after.total_seconds()
    try:
        async with asyncio.timeout(limit_s), db.sessionmaker() as session:
            seen = await repository.last_seen(session, kind, now - stale_after)
    except Exception as exc:  # e.g. the database is down or not migrated: readiness says so, it does not fail
        log.warning("heartbeat_read_failed", kind=kind.value, error=repr(exc))
        reason = migrate.MISSING_SCHEMA if migrate.is_missing_schema(exc) else "heartbeats unreadable"
        return ProcessLivenessPublic(
            alive=False, running=0, last_heartbeat_at=None, age_s=None, stale_after_s=stale_s, error=reason
        )
    newest = seen.running_beat_at
    age = None if newest is None else max(0.0, (now - newest).total_seconds())
    return ProcessLivenessPublic(
        alive=seen.running > 0,
        running=seen.running,
        last_heartbeat_at=newest,
        age_s=None if age is None else round(age, 3),
        stale_after_s=stale_s,
    )

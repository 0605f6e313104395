"""SQL of process heartbeats: workers and beat write them (sync), ``/readyz`` reads them (async)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models import ProcessHeartbeat, ProcessKind


def stamp(session: Session, name: str, kind: ProcessKind, pid: int, now: datetime, *, starting: bool) -> None:
    """Record that process ``name`` is alive at ``now``; ``starting`` (re)opens its row for a new process."""
    if not starting:
        result = session.execute(
            update(ProcessHeartbeat)
            .where(ProcessHeartbeat.name == name, ProcessHeartbeat.pid == pid)
            .values(beat_at=now, stopped_at=None)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return
    # One writer per name (a node name is unique while its process lives), so merge's read-then-write is safe.
    session.merge(
        ProcessHeartbeat(name=name, kind=kind, pid=pid, started_at=now, beat_at=now, stopped_at=None)
    )


def mark_stopped(session: Session, name: str, pid: int, now: datetime) -> None:
    """A clean shutdown: the row stays (when it was last seen is worth knowing), flagged as stopped."""
    session.execute(
        update(ProcessHeartbeat)
        .where(ProcessHeartbeat.name == name, ProcessHeartbeat.pid == pid)
        .values(stopped_at=now)
    )


@dataclass(frozen=True)
class LastSeen:
    """The newest heartbeat of a kind of process: of a running one, and of any (stopped ones included)."""

    running_beat_at: datetime | None
    last_beat_at: datetime | None
    running: int


async def last_seen(session: AsyncSession, kind: ProcessKind, fresh_since: datetime) -> LastSeen:
    """Newest heartbeats of ``kind``; ``running`` counts processes not stopped and stamped since
    ``fresh_since``."""
    rows = (
        await session.execute(
            select(ProcessHeartbeat.beat_at, ProcessHeartbeat.stopped_at).where(ProcessHeartbeat.kind == kind)
        )
    ).all()
    running = [beat_at for beat_at, stopped_at in rows if stopped_at is None]
    return LastSeen(
        running_beat_at=max(running, default=None),
        last_beat_at=max((beat_at for beat_at, _ in rows), default=None),
        running=sum(1 for beat_at in running if beat_at >= fresh_since),
    )

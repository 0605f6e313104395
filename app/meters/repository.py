"""All SQL of the meters: readings in, snapshots out, and the per-user recompute slot. Scoped by user."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models import MeterRecompute, MeterSnapshot, SignalReading, User

# Five weeks of one user's readings is a few hundred rows from daily summaries; the cap only bounds a
# pathological producer (per-minute samples) so one recompute cannot load millions of rows.
READING_ROW_CAP = 20_000


def _insert_for(session: Session | AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def claim_statement(
    session: Session | AsyncSession, user_id: uuid.UUID, now: datetime, token: uuid.UUID
) -> Any:
    """Upsert the user's recompute row: bump ``requested_at``; take the queue slot only if it is free.

    Returns the row's ``queued_token``: ``token`` itself means this caller took the slot and must enqueue.
    """
    insert = _insert_for(session)(MeterRecompute).values(
        id=uuid.uuid4(), user_id=user_id, requested_at=now, queued_token=token, queued_at=now
    )
    free = MeterRecompute.queued_token.is_(None)
    return insert.on_conflict_do_update(
        index_elements=["user_id"],
        set_={
            "requested_at": insert.excluded.requested_at,
            # COALESCE keeps a queued task's token: a second request while one is queued enqueues nothing.
            "queued_token": func.coalesce(MeterRecompute.queued_token, insert.excluded.queued_token),
            "queued_at": case((free, insert.excluded.queued_at), else_=MeterRecompute.queued_at),
        },
    ).returning(MeterRecompute.queued_token)


class RecomputeRepository:
    """The worker side (sync session)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(self, user_id: uuid.UUID, now: datetime, token: uuid.UUID) -> bool:
        queued = self.session.execute(claim_statement(self.session, user_id, now, token)).scalar_one()
        return bool(queued == token)

    def start(self, user_id: uuid.UUID, now: datetime) -> bool:
        """Free the queue slot as the recompute starts (row-locked against a producer mid-claim); returns
        whether the user still has a recompute row (a deleted user has none)."""
        statement = (
            update(MeterRecompute)
            .where(MeterRecompute.user_id == user_id)
            .values(queued_token=None, started_at=now)
            .returning(MeterRecompute.id)
        )
        return self.session.execute(statement).first() is not None

    def finish(self, user_id: uuid.UUID, now: datetime) -> None:
        self.session.execute(
            update(MeterRecompute).where(MeterRecompute.user_id == user_id).values(computed_at=now)
        )

    def take_lost_slots(self, held_before: datetime, now: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Users whose queue slot was taken before ``held_before`` and whose task never started since: the
        message was lost (broker down at commit, a flushed queue). Their ``queued_at`` becomes ``now``, so
        the message sent again is given as long as the first before it counts as lost too."""
        statement = (
            select(MeterRecompute.user_id)
            .where(
                MeterRecompute.queued_token.is_not(None),
                MeterRecompute.queued_at < held_before,
                (MeterRecompute.started_at.is_(None))
                | (MeterRecompute.started_at < MeterRecompute.queued_at),
            )
            .order_by(MeterRecompute.queued_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        users = self.session.execute(statement).scalars().all()
        if users:
            self.session.execute(
                update(MeterRecompute).where(MeterRecompute.user_id.in_(users)).values(queued_at=now)
            )
        return users

    def stale(self, computed_before: datetime, readings_since: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Users with no recompute queued, none since ``computed_before``, and a reading observed since
        ``readings_since`` (older readings have expired already: their meters are missing and stay so)."""
        recent = exists().where(
            SignalReading.user_id == MeterRecompute.user_id, SignalReading.observed_at >= readings_since
        )
        statement = (
            select(MeterRecompute.user_id)
            .where(
                MeterRecompute.queued_token.is_(None),
                (MeterRecompute.computed_at.is_(None)) | (MeterRecompute.computed_at < computed_before),
                recent,
            )
            .order_by(MeterRecompute.computed_at)
            .limit(limit)
        )
        return self.session.execute(statement).scalars().all()

    def user_timezone(self, user_id: uuid.UUID) -> str | None:
        return self.session.execute(select(User.timezone).where(User.id == user_id)).scalar_one_or_none()

    def readings(self, user_id: uuid.UUID, start: datetime, end: datetime) -> Sequence[SignalReading]:
        """The user's readings observed in ``[start, end]``, newest first (capped)."""
        statement = (
            select(SignalReading)
            .where(
                SignalReading.user_id == user_id,
                SignalReading.observed_at >= start,
                SignalReading.observed_at <= end,
            )
            .order_by(SignalReading.observed_at.desc())
            .limit(READING_ROW_CAP)
        )
        return self.session.execute(statement).scalars().all()

    def add_snapshot(self, snapshot: MeterSnapshot) -> MeterSnapshot:
        self.session.add(snapshot)
        self.session.flush()
        return snapshot


class SnapshotRepository:
    """The API side (async session): the caller's own snapshots."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, user_id: uuid.UUID, now: datetime, token: uuid.UUID) -> bool:
        queued = (await self.session.execute(claim_statement(self.session, user_id, now, token))).scalar_one()
        return bool(queued == token)

    async def page(
        self,
        user_id: uuid.UUID,
        *,
        start: datetime | None,
        end: datetime | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[MeterSnapshot]:
        statement = select(MeterSnapshot).where(MeterSnapshot.user_id == user_id)
        if start is not None:
            statement = statement.where(MeterSnapshot.taken_at >= start)
        if end is not None:
            statement = statement.where(MeterSnapshot.taken_at <= end)
        if before is not None:
            statement = statement.where(tuple_(MeterSnapshot.taken_at, MeterSnapshot.id) < tuple_(*before))
        statement = statement.order_by(MeterSnapshot.taken_at.desc(), MeterSnapshot.id.desc()).limit(limit)
        return (await self.session.execute(statement)).scalars().all()

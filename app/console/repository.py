"""All SQL of the console. Person-view statements take the user's id and filter by it; the ops statements
are reached only through an operator's session (``sessions.require_ops``).

Secret columns (token hashes, encrypted OAuth tokens, raw webhook bodies and headers) are never selected:
the device query names its columns instead of loading the row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Adapter,
    ApiToken,
    CalendarEvent,
    DeviceConnection,
    Feedback,
    FinetuneJob,
    FinetuneStatus,
    MeterSnapshot,
    Recommendation,
    User,
)
from app.models.base import meter_columns
from domain import Action, Response

# Upper bounds on what one page renders: a month of data is far below them; a runaway table cannot hang it.
MAX_SNAPSHOTS = 2000
MAX_RECOMMENDATIONS = 2000
MAX_EVENTS = 50
MAX_OPS_ROWS = 200


class ConsoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def session_user(self, user_id: uuid.UUID, token_id: uuid.UUID) -> User | None:
        """The user of a console session, if the API token it was opened with is still active."""
        statement = (
            select(User)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.id == token_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_user(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def meter_snapshots(self, user_id: uuid.UUID, since: datetime) -> Sequence[Row[Any]]:
        statement = (
            select(MeterSnapshot.taken_at, MeterSnapshot.source, *meter_columns(MeterSnapshot))
            .where(MeterSnapshot.user_id == user_id, MeterSnapshot.taken_at >= since)
            .order_by(MeterSnapshot.taken_at)
            .limit(MAX_SNAPSHOTS)
        )
        return (await self.session.execute(statement)).all()

    async def latest_meter_snapshot(self, user_id: uuid.UUID, since: datetime) -> MeterSnapshot | None:
        """The newest snapshot since ``since``, whole (its provenance JSON is read for this one row only)."""
        statement = (
            select(MeterSnapshot)
            .where(MeterSnapshot.user_id == user_id, MeterSnapshot.taken_at >= since)
            .order_by(MeterSnapshot.taken_at.desc(), MeterSnapshot.id)
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def recommendations(
        self, user_id: uuid.UUID, since: datetime
    ) -> Sequence[Row[datetime, int, int, Action, list[float], Response | None, dict[str, Any] | None]]:
        """Recommendations since ``since`` with the response they got (None: none yet) and the evidence
        combination they were served with (policy.evidence; None before it), oldest first."""
        statement = (
            select(
                Recommendation.at,
                Recommendation.day,
                Recommendation.slot,
                Recommendation.action,
                Recommendation.probabilities,
                Feedback.response,
                Recommendation.evidence,
            )
            .outerjoin(
                Feedback, (Feedback.recommendation_id == Recommendation.id) & (Feedback.user_id == user_id)
            )
            .where(Recommendation.user_id == user_id, Recommendation.at >= since)
            .order_by(Recommendation.at)
            .limit(MAX_RECOMMENDATIONS)
        )
        return (await self.session.execute(statement)).all()

    async def calendar_events(self, user_id: uuid.UUID, since: datetime) -> Sequence[CalendarEvent]:
        statement = (
            select(CalendarEvent)
            .where(CalendarEvent.user_id == user_id, CalendarEvent.ends_at >= since)
            .order_by(CalendarEvent.starts_at, CalendarEvent.id)
            .limit(MAX_EVENTS)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def calendar_event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> CalendarEvent | None:
        statement = select(CalendarEvent).where(
            CalendarEvent.user_id == user_id, CalendarEvent.id == event_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def devices(self, user_id: uuid.UUID) -> Sequence[Row[str, str, str | None, datetime, datetime]]:
        statement = (
            select(
                DeviceConnection.provider,
                DeviceConnection.status,
                DeviceConnection.status_reason,
                DeviceConnection.created_at,
                DeviceConnection.updated_at,
            )
            .where(DeviceConnection.user_id == user_id)
            .order_by(DeviceConnection.created_at)
        )
        return (await self.session.execute(statement)).all()

    async def adapters(self, user_id: uuid.UUID, *, for_update: bool = False) -> Sequence[Adapter]:
        statement = select(Adapter).where(Adapter.user_id == user_id).order_by(Adapter.version.desc())
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalars().all()

    async def finetune_jobs_of(self, user_id: uuid.UUID, limit: int = 10) -> Sequence[FinetuneJob]:
        statement = (
            select(FinetuneJob)
            .where(FinetuneJob.user_id == user_id)
            .order_by(FinetuneJob.created_at.desc())
            .limit(limit)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def open_finetune_job(self, user_id: uuid.UUID) -> FinetuneJob | None:
        statement = select(FinetuneJob).where(
            FinetuneJob.user_id == user_id,
            FinetuneJob.status.in_((FinetuneStatus.QUEUED, FinetuneStatus.RUNNING)),
        )
        return (await self.session.execute(statement.limit(1))).scalar_one_or_none()

    async def add(self, row: Any) -> None:
        self.session.add(row)
        await self.session.flush()


class OpsConsoleRepository:
    """Cross-user reads for operators only."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def finetune_jobs(self, status: FinetuneStatus | None) -> Sequence[FinetuneJob]:
        statement = select(FinetuneJob).order_by(FinetuneJob.created_at.desc(), FinetuneJob.id)
        if status is not None:
            statement = statement.where(FinetuneJob.status == status)
        return (await self.session.execute(statement.limit(MAX_OPS_ROWS))).scalars().all()

    async def adapters(self) -> Sequence[Adapter]:
        statement = select(Adapter).order_by(Adapter.user_id, Adapter.version.desc()).limit(MAX_OPS_ROWS)
        return (await self.session.execute(statement)).scalars().all()

    async def users(self) -> Sequence[User]:
        statement = select(User).order_by(User.created_at.desc(), User.id).limit(MAX_OPS_ROWS)
        return (await self.session.execute(statement)).scalars().all()

    async def backend_counts(self, since: datetime) -> dict[str, int]:
        """Recommendations per answering backend since ``since`` (all processes, unlike the metrics)."""
        statement = (
            select(Recommendation.backend, func.count())
            .where(Recommendation.created_at >= since)
            .group_by(Recommendation.backend)
        )
        return {backend: count for backend, count in (await self.session.execute(statement)).all()}

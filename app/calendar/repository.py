"""All SQL of the calendar-events routes; every statement is filtered by the calling user."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import CalendarCorrection, CalendarEvent
from app.models.base import utcnow
from domain import Action

RELATED_LIMIT = 10_000


class CalendarRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def events_between(
        self, user_id: uuid.UUID, start: datetime, end: datetime, limit: int
    ) -> list[CalendarEvent]:
        """The user's events overlapping ``[start, end)``, earliest first."""
        statement = (
            select(CalendarEvent)
            .where(
                CalendarEvent.user_id == user_id, CalendarEvent.starts_at < end, CalendarEvent.ends_at > start
            )
            .order_by(CalendarEvent.starts_at, CalendarEvent.id)
            .limit(limit)
        )
        return list((await self.session.execute(statement)).scalars())

    async def event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> CalendarEvent | None:
        """The user's event; another user's is ``None`` like a missing one (OWASP API1)."""
        statement = select(CalendarEvent).where(
            CalendarEvent.id == event_id, CalendarEvent.user_id == user_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def related(self, user_id: uuid.UUID, recurring_event_id: str | None) -> list[CalendarEvent]:
        """Candidates for a correction's reach: the user's events of the series and those with a title (the
        caller compares normalised titles, which SQL cannot compute). Bounded: the sync keeps about three
        months of events."""
        conditions: list[ColumnElement[bool]] = [CalendarEvent.title.is_not(None)]
        if recurring_event_id:
            conditions.append(CalendarEvent.recurring_event_id == recurring_event_id)
        statement = (
            select(CalendarEvent)
            .where(CalendarEvent.user_id == user_id, or_(*conditions))
            .limit(RELATED_LIMIT)
        )
        return list((await self.session.execute(statement)).scalars())

    async def remember(self, user_id: uuid.UUID, kind: str, key: str, action: Action | None) -> None:
        statement = (
            select(CalendarCorrection)
            .where(
                CalendarCorrection.user_id == user_id,
                CalendarCorrection.kind == kind,
                CalendarCorrection.key == key,
            )
            .with_for_update()
        )
        row = (await self.session.execute(statement)).scalar_one_or_none()
        if row is None:
            self.session.add(CalendarCorrection(user_id=user_id, kind=kind, key=key, action=action))
        else:
            row.action = action
            row.updated_at = utcnow()
        await self.session.flush()

"""The calendar-events view and the user's corrections (API side)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.repository import CalendarRepository
from app.calendar.schemas import ActionCorrectionUpdate, CalendarEventPage, CalendarEventPublic, SlotPublic
from app.core.errors import AppError, NotFoundError
from app.models import CalendarEvent, User
from app.models.calendar import CorrectionKind
from bridges.actions import normalize

# A view of at most two months, and at most this many events in it: bounded work per request (API4).
MAX_RANGE = timedelta(days=62)
MAX_EVENTS = 2000
SOURCE_USER = "user"


def to_public(event: CalendarEvent) -> CalendarEventPublic:
    return CalendarEventPublic(
        id=event.id,
        title=event.title,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        all_day=event.all_day,
        slots=[SlotPublic(**slot) for slot in event.slots or []],
        action=event.action,
        confidence=event.confidence,
        source=event.action_source,
        context=event.context,
    )


async def list_events(session: AsyncSession, user: User, start: datetime, end: datetime) -> CalendarEventPage:
    if end <= start:
        raise AppError(422, "`to` must be after `from`", code="invalid_range")
    if end - start > MAX_RANGE:
        raise AppError(
            422,
            f"The range may span at most {MAX_RANGE.days} days",
            code="invalid_range",
            details={"max_days": MAX_RANGE.days},
        )
    events = await CalendarRepository(session).events_between(user.id, start, end, MAX_EVENTS)
    return CalendarEventPage(items=[to_public(event) for event in events])


async def correct_action(
    session: AsyncSession, user: User, event_id: uuid.UUID, data: ActionCorrectionUpdate
) -> CalendarEventPublic:
    """Set the event's action and remember it for the event, its recurring series and its (normalised)
    title, so later syncs — a 410 wipe included — and identical events get the same verdict."""
    repo = CalendarRepository(session)
    event = await repo.event(user.id, event_id)
    if event is None:
        raise NotFoundError("Calendar event not found")
    title_key = normalize(event.title or "")[:1024]
    await repo.remember(user.id, CorrectionKind.EVENT, event.external_id, data.action)
    if event.recurring_event_id:
        await repo.remember(user.id, CorrectionKind.SERIES, event.recurring_event_id, data.action)
    if title_key:
        await repo.remember(user.id, CorrectionKind.TITLE, title_key, data.action)
    for other in await repo.related(user.id, event.recurring_event_id):
        same_series = bool(event.recurring_event_id) and other.recurring_event_id == event.recurring_event_id
        if same_series or (title_key and normalize(other.title or "") == title_key):
            other.action, other.confidence, other.action_source = data.action, 1.0, SOURCE_USER
    event.action, event.confidence, event.action_source = data.action, 1.0, SOURCE_USER
    return to_public(event)

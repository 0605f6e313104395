"""``/v1/users/me/calendar-events``: what the calendar sync made of the user's events, and corrections."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.calendar import service
from app.calendar.schemas import ActionCorrectionUpdate, CalendarEventPage, CalendarEventPublic
from app.core.auth import CurrentUser
from app.core.db import SessionDep
from app.core.errors import ErrorResponse
from app.core.timebounds import BOUND_DESCRIPTION, Instant

router = APIRouter(
    prefix="/v1/users/me/calendar-events",
    tags=["calendar"],
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)


@router.get("", response_model=CalendarEventPage)
async def list_calendar_events(
    session: SessionDep,
    user: CurrentUser,
    start: Annotated[Instant, Query(alias="from", description=f"Start of the range. {BOUND_DESCRIPTION}")],
    end: Annotated[
        Instant,
        Query(
            alias="to", description=f"End of the range (at most 62 days after `from`). {BOUND_DESCRIPTION}"
        ),
    ],
) -> CalendarEventPage:
    """The calling user's synced calendar events overlapping ``[from, to)``, earliest first: each with the
    slots it covers, the action it amounts to (null: not an action), the confidence and who decided it
    (``rule``, ``llm`` or ``user``)."""
    return await service.list_events(session, user, start, end)


@router.put(
    "/{event_id}/action",
    response_model=CalendarEventPublic,
    responses={404: {"model": ErrorResponse, "description": "No such event of the calling user."}},
)
async def correct_calendar_event_action(
    session: SessionDep, user: CurrentUser, event_id: uuid.UUID, data: ActionCorrectionUpdate
) -> CalendarEventPublic:
    """Correct the action of one event (null: "not an action"). The correction is remembered for the event,
    its whole recurring series and every event with the same title, now and in later syncs."""
    return await service.correct_action(session, user, event_id, data)

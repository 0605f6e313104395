"""``/v1/ops/webhook-events``: the operators' view of the inbox (admin token only).

Failed deliveries stay visible here until a replay succeeds; nothing here returns a stored body or header,
which may hold health data or a provider's echoed secret.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.core.auth import AdminAuth, SettingsDep
from app.core.db import SessionDep
from app.core.errors import ErrorResponse
from app.webhooks import service
from app.webhooks.schemas import WebhookEventPage, WebhookEventPublic, WebhookStatus

router = APIRouter(prefix="/v1/ops/webhook-events", tags=["operations"])

_ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No or an invalid token."},
    403: {"model": ErrorResponse, "description": "A user token: these routes need the admin token."},
}


@router.get(
    "",
    response_model=WebhookEventPage,
    responses=_ADMIN_ONLY,
)
async def list_webhook_events(
    session: SessionDep,
    _admin: AdminAuth,
    status: Annotated[WebhookStatus | None, Query(description="Only events in this state.")] = None,
    source: Annotated[
        str | None, Query(min_length=1, max_length=32, pattern=r"^[a-z0-9-]+$", description="Provider.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=service.CURSOR_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
) -> WebhookEventPage:
    """Inbox events, newest first (``received_at``, then id), on a stable keyset cursor.

    Each event shows its id, source, external id, user, times, attempts, last error and derived status
    (``handled``; else ``failed`` when an error is recorded; else ``pending``), never its body or headers.
    """
    return await service.list_events(session, status=status, source=source, limit=limit, cursor=cursor)


@router.post(
    "/{event_id:uuid}/replay",
    status_code=202,
    response_model=WebhookEventPublic,
    responses={**_ADMIN_ONLY, 404: {"model": ErrorResponse, "description": "No such event."}},
)
async def replay_webhook_event(
    session: SessionDep, settings: SettingsDep, _admin: AdminAuth, event_id: uuid.UUID
) -> WebhookEventPublic:
    """Queue the event's processing again (sent after commit, on ``ingest``); 202 with the event as it is now.

    Safe on any event: processing is idempotent, so replaying a handled event writes nothing new; a failed
    or pending one gets another attempt (which is counted on the event).
    """
    return await service.replay(session, settings, event_id)

"""``GET /v1/users/me/meters``: the caller's meter snapshots (values or missing, confidence, provenance)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.auth import CurrentUser
from app.core.db import SessionDep
from app.core.errors import ErrorResponse
from app.core.timebounds import BOUND_DESCRIPTION, Instant
from app.meters import service
from app.meters.schemas import MeterSnapshotPage

router = APIRouter(
    prefix="/v1/users/me/meters",
    tags=["meters"],
    responses={
        401: {"model": ErrorResponse, "description": "No or an invalid token."},
        403: {"model": ErrorResponse, "description": "Not a user token (the admin has no meters)."},
        422: {"model": ErrorResponse, "description": "A bad time, range or cursor."},
    },
)


@router.get("", response_model=MeterSnapshotPage)
async def list_meters(
    session: SessionDep,
    user: CurrentUser,
    start: Annotated[
        Instant | None,
        Query(alias="from", description=f"Only snapshots taken at or after. {BOUND_DESCRIPTION}"),
    ] = None,
    end: Annotated[
        Instant | None,
        Query(alias="to", description=f"Only snapshots taken at or before. {BOUND_DESCRIPTION}"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    cursor: Annotated[
        str | None, Query(pattern=service.CURSOR_PATTERN, description="`next_cursor` of the previous page.")
    ] = None,
) -> MeterSnapshotPage:
    """The caller's meter snapshots, newest first, on a stable keyset cursor.

    Each has the five meters (null where no fresh input existed: *missing*, not 0.5), the confidence in each,
    the source (``bridge`` for the meters engine) and the engine's provenance: which inputs each meter used
    and how fresh they were.
    """
    since: datetime | None = start
    until: datetime | None = end
    return await service.list_snapshots(session, user.id, start=since, end=until, limit=limit, cursor=cursor)

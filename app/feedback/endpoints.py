"""``POST /v1/feedback``: the person's answer to a recommendation."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.core.auth import CurrentUser, SettingsDep
from app.core.db import SessionDep
from app.core.errors import ErrorResponse
from app.core.idempotency import REPLAY_HEADER, IdempotencyKeyHeader
from app.feedback import service
from app.feedback.schemas import FeedbackCreate, FeedbackPublic

router = APIRouter(
    prefix="/v1",
    tags=["recommendations"],
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)


@router.post(
    "/feedback",
    response_model=FeedbackPublic,
    responses={
        404: {"model": ErrorResponse, "description": "No such recommendation of the calling user."},
        409: {"model": ErrorResponse, "description": "The recommendation already has a different answer."},
        410: {"model": ErrorResponse, "description": "The feedback window has closed."},
    },
)
async def give_feedback(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    data: FeedbackCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> FeedbackPublic | JSONResponse:
    """Record whether the person accepted, ignored or rescheduled a recommendation; returns the reward.

    Accepted is +1, ignored and rescheduled are -1. Sending the same answer again returns the same result; a
    different answer is 409. With an ``Idempotency-Key``, a retry with the same body gets the stored first
    answer (header ``Idempotent-Replayed: true``), and reusing the key for another body is 422.
    """
    if idempotency_key is None:
        return await service.give_feedback(session, user, settings, data)
    stored = await service.give_feedback_once(
        session, user, settings, data, key=idempotency_key, method=request.method, path=request.url.path
    )
    headers = {REPLAY_HEADER: "true"} if stored.replayed else None
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)

"""``POST /v1/recommend``: the action a person should do now, from the policy model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from app.core.auth import CurrentUser, SettingsDep
from app.core.db import SessionDep
from app.core.errors import ErrorResponse
from app.core.idempotency import REPLAY_HEADER, IdempotencyKeyHeader
from app.recommend import service
from app.recommend.dependencies import PolicyDep
from app.recommend.schemas import RecommendationCreate, RecommendationPublic

router = APIRouter(
    prefix="/v1",
    tags=["recommendations"],
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)


@router.post("/recommend", response_model=RecommendationPublic)
async def recommend(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    policy: PolicyDep,
    settings: SettingsDep,
    data: Annotated[RecommendationCreate | None, Body()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> RecommendationPublic | JSONResponse:
    """Recommend one of the 10 actions for the calling user's current slot (or the slot of ``at``).

    The action is sampled from the policy's distribution (after ``exclude``, the temperature and the
    exploration floor); it is stored with that distribution, its propensity, the model, adapter and backend,
    and the prompt's SHA-256. When the model server is down or slow, the exact-Bayes fallback answers
    (``backend: "fallback"``); that is never an error.

    With an ``Idempotency-Key``, a retry with the same body gets the first recommendation again (header
    ``Idempotent-Replayed: true``) and nothing new is logged; reusing the key for another body is 422.
    """
    body = data or RecommendationCreate()
    if idempotency_key is None:
        return await service.recommend(session, user, policy, settings, body)
    stored = await service.recommend_once(
        session,
        user,
        policy,
        settings,
        body,
        key=idempotency_key,
        method=request.method,
        path=request.url.path,
    )
    headers = {REPLAY_HEADER: "true"} if stored.replayed else None
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)

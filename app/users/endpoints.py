"""Users API: create (admin), me, change me, token rotation, export, delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from app.core.auth import AdminAuth, CurrentUser, SettingsDep, UserOrAdmin
from app.core.db import SessionDep
from app.core.errors import ErrorResponse
from app.core.idempotency import REPLAY_HEADER, IdempotencyKeyHeader
from app.users import service
from app.users.schemas import (
    TokenPublic,
    UserCreate,
    UserCreatedPublic,
    UserExportPublic,
    UserPublic,
    UserUpdate,
)

router = APIRouter(
    prefix="/v1/users",
    tags=["users"],
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserCreatedPublic,
    responses={
        409: {
            "model": ErrorResponse,
            "description": "A request with this Idempotency-Key is still in progress, the user it created "
            "has since been deleted, or that user's token can no longer be shown (the server's secret key "
            "changed; rotate the token).",
        }
    },
)
async def create_user(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    _admin: AdminAuth,
    data: Annotated[UserCreate | None, Body()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> UserCreatedPublic:
    """Create a user (admin only). Returns the user's ID and bearer token; the token is shown only once.

    With an ``Idempotency-Key``, a retry with the same body gets the first user and token again (header
    ``Idempotent-Replayed: true``) and creates no second user; reusing the key for another body is 422."""
    body = data or UserCreate()
    if idempotency_key is None:
        return await service.create_user(session, body)
    created, replayed = await service.create_user_once(
        session, settings, body, key=idempotency_key, method=request.method, path=request.url.path
    )
    if replayed:
        response.headers[REPLAY_HEADER] = "true"
    return created


@router.get("/me", response_model=UserPublic)
async def read_me(user: CurrentUser) -> UserPublic:
    """The calling user."""
    return service.to_public(user)


@router.patch("/me", response_model=UserPublic)
async def update_me(
    session: SessionDep, user: CurrentUser, data: Annotated[UserUpdate, Body()]
) -> UserPublic:
    """Change the calling user's time zone (an IANA name such as "Europe/Berlin"); returns the user."""
    return await service.update_user(session, user, data)


@router.post(
    "/{user_id:uuid}/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenPublic,
    responses={404: {"model": ErrorResponse}},
)
async def rotate_token(session: SessionDep, caller: UserOrAdmin, user_id: uuid.UUID) -> TokenPublic:
    """Issue a new token and revoke all the user's previous ones (admin, or the user themself).

    The new token is shown only once. Rotating with the token being replaced is allowed: it stops working as
    soon as this request is answered.
    """
    return await service.rotate_token(session, caller, user_id)


@router.get("/me/export", response_model=UserExportPublic)
async def export_me(session: SessionDep, user: CurrentUser) -> UserExportPublic:
    """Everything Rhythm stores about the calling user, as JSON."""
    return await service.export_user(session, user)


# ``:uuid`` in the path, not only in the type: a non-UUID segment then matches no route (404, like any unknown
# user) instead of a 422, and ``/me`` falls through to its own routes, so ``DELETE /me`` is a 405 with Allow.
@router.delete(
    "/{user_id:uuid}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {"model": ErrorResponse}}
)
async def delete_user(
    session: SessionDep, settings: SettingsDep, caller: UserOrAdmin, user_id: uuid.UUID
) -> Response:
    """Delete a user and all their data (admin, or a user deleting themself).

    Linked provider accounts are revoked at the providers and the user's LoRA adapter files removed, in the
    background after the commit (revocations retried until confirmed).
    """
    await service.delete_user(session, settings, caller, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Connections API: link a provider account (OAuth, app-obtained tokens, Terra widget), list, disconnect."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from app.connections import service
from app.connections.schemas import (
    AuthorizationUrlPublic,
    ConnectionPublic,
    ConnectionTokensCreate,
    TerraSessionCreate,
    TerraSessionPublic,
)
from app.core.auth import CurrentUser, SettingsDep
from app.core.db import SessionDep
from app.core.errors import ErrorResponse, error_response
from app.models.base import utcnow

router = APIRouter(
    prefix="/v1",
    tags=["connections"],
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)

ProviderName = Annotated[
    str,
    Path(
        max_length=32,
        description="OAuth provider: whoop, oura, google-health or google (Calendar and Tasks).",
        examples=["oura"],
    ),
]
_NOT_CONFIGURED: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown provider, or not configured here."}
}
_PROVIDER_FAILED: dict[int | str, dict[str, Any]] = {
    424: {"model": ErrorResponse, "description": "The provider failed or is unreachable; try again later."}
}
_NO_STORE = {"Cache-Control": "no-store"}


@router.get(
    "/connect/{provider}/authorize",
    response_model=AuthorizationUrlPublic,
    responses={
        302: {"description": "Redirect to the provider's consent page (browsers)."},
        **_NOT_CONFIGURED,
    },
)
async def authorize(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    provider: ProviderName,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Start linking the caller's account at ``provider`` (server-side authorization-code flow).

    Browsers get a 302 to the provider's consent page. A mobile app cannot carry its bearer token through a
    browser redirect: it sends ``Accept: application/json``, receives ``{"authorization_url"}`` and opens that
    URL in an in-app browser. The URL carries a random single-use ``state`` valid for
    ``RHYTHM_OAUTH_STATE_TTL`` (and a PKCE challenge where the provider supports it); the provider then
    redirects to ``/v1/connect/{provider}/callback``.
    """
    url = await service.start_authorization(session, settings, user, provider, utcnow())
    if accept is not None and "application/json" in accept.lower():
        return JSONResponse(AuthorizationUrlPublic(authorization_url=url).model_dump(), headers=_NO_STORE)
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND, headers=_NO_STORE)


@router.get(
    "/connect/{provider}/callback",
    response_model=ConnectionPublic,
    responses={
        400: {
            "model": ErrorResponse,
            "description": "Missing, unknown, used or expired state; consent declined; code refused.",
        },
        409: {"model": ErrorResponse, "description": "The account is already linked to another user."},
        **_NOT_CONFIGURED,
        **_PROVIDER_FAILED,
    },
)
async def callback(
    session: SessionDep,
    settings: SettingsDep,
    provider: ProviderName,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Where the provider sends the browser back (no bearer token: ``state`` identifies the user).

    Trades the code for tokens, reads the account id from the provider's own profile endpoint (never from the
    request), stores the tokens encrypted and starts the provider's first sync. Any other query parameter is
    ignored. A failed callback still uses up its ``state``.
    """
    try:
        connection = await service.complete_authorization(
            session, settings, provider, code=code, state=state, error=error, now=utcnow()
        )
    except service.LinkFailed as exc:
        # Answered without raising, so that the request's transaction commits the consumed state.
        return error_response(exc.status_code, exc.message, code=exc.code, details=exc.details)
    return JSONResponse(connection.model_dump(mode="json"), headers=_NO_STORE)


@router.get("/users/me/connections", response_model=list[ConnectionPublic])
async def list_connections(session: SessionDep, user: CurrentUser) -> list[ConnectionPublic]:
    """The caller's linked accounts with their status (tokens are never shown)."""
    return await service.list_connections(session, user)


@router.post(
    "/users/me/connections/terra/session",
    response_model=TerraSessionPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"model": ErrorResponse, "description": "Terra is not configured here."},
        **_PROVIDER_FAILED,
    },
)
async def terra_session(
    settings: SettingsDep,
    user: CurrentUser,
    data: Annotated[TerraSessionCreate | None, Body()] = None,
) -> TerraSessionPublic:
    """Open a Terra widget session for the caller; open the returned URL in a browser.

    Our backend calls Terra with our credentials and ``reference_id`` = the caller's user id; Terra's signed
    ``auth`` webhook then creates the connection.
    """
    return await service.create_terra_session(settings, user, data or TerraSessionCreate())


@router.post(
    "/users/me/connections/{provider}",
    response_model=ConnectionPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"model": ErrorResponse, "description": "The account is already linked to another user."},
        **_NOT_CONFIGURED,
        **_PROVIDER_FAILED,
    },
)
async def link_with_tokens(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    provider: ProviderName,
    data: Annotated[ConnectionTokensCreate, Body()],
) -> ConnectionPublic:
    """Link an account from tokens the app obtained itself (e.g. through a native SDK).

    The account id is read from the provider's profile endpoint with the access token; the body cannot name
    it. Linking the same account again refreshes the stored tokens.
    """
    return await service.link_with_tokens(session, settings, user, provider, data, utcnow())


@router.delete(
    "/users/me/connections/{provider}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        404: {"model": ErrorResponse, "description": "The caller has no connection to this provider."}
    },
)
async def disconnect(
    session: SessionDep, settings: SettingsDep, user: CurrentUser, provider: ProviderName
) -> Response:
    """Unlink the caller's account at ``provider``: the tokens are deleted here at once.

    Revocation at the provider (and its teardown, e.g. stopping Google push channels) runs in a worker and is
    retried until the provider confirms; this request does not wait for it.
    """
    await service.disconnect(session, settings, user, provider, utcnow())
    return Response(status_code=status.HTTP_204_NO_CONTENT)

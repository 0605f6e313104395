"""``POST /v1/webhooks/{provider}``: the inbox's front door (no user token: the provider's signature is the
authentication)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from app.core.auth import SettingsDep
from app.core.db import SessionDep
from app.core.errors import AppError, ErrorResponse
from app.models.base import utcnow
from app.webhooks import service
from app.webhooks.schemas import WebhookChallengePublic, WebhookReceiptPublic
from bridges.webhooks import PATH_SECRET_HEADER

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

ProviderName = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z0-9-]+$")]


async def _read_capped(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise AppError(413, f"Webhook body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/{provider}",
    status_code=202,
    response_model=WebhookReceiptPublic,
    responses={
        200: {"model": WebhookReceiptPublic, "description": "Already received: processed once."},
        400: {"model": ErrorResponse, "description": "Not in the provider's format; nothing stored."},
        401: {"model": ErrorResponse, "description": "Bad signature or stale timestamp."},
        404: {"model": ErrorResponse, "description": "Unknown or unconfigured provider."},
        413: {"model": ErrorResponse, "description": "Body over the webhook cap."},
    },
    # The body is read as raw bytes (signatures are over the exact bytes), so FastAPI cannot infer it; say
    # what providers send. Google Calendar's push has an empty body, hence not required.
    openapi_extra={
        "requestBody": {
            "required": False,
            "description": "The provider's delivery, byte for byte, in its own documented format.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def receive_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    provider: ProviderName,
) -> WebhookReceiptPublic | JSONResponse:
    """Verify a provider's delivery and store its exact bytes once; processing happens in a worker.

    202 for a new delivery (queued on ``ingest`` after commit), 200 for a delivery already received.
    """
    return await _receive(request, session, settings, provider, {})


async def _receive(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    provider: str,
    extra_headers: dict[str, str],
) -> WebhookReceiptPublic | JSONResponse:
    body = await _read_capped(request, settings.webhook_max_body_bytes)
    headers = {name.lower(): value for name, value in request.headers.items()}
    # A client cannot smuggle the pseudo-header in: only the route's own path segment sets it.
    headers.pop(PATH_SECRET_HEADER, None)
    headers.update(extra_headers)
    accepted = await service.accept(session, settings, provider, headers, body, utcnow())
    if accepted.duplicate:
        return JSONResponse(WebhookReceiptPublic(duplicate=True).model_dump(), status_code=200)
    return WebhookReceiptPublic(duplicate=False)


@router.post(
    "/{provider}/{path_secret}",
    status_code=202,
    response_model=WebhookReceiptPublic,
    responses={
        200: {"model": WebhookReceiptPublic, "description": "Already received: processed once."},
        400: {"model": ErrorResponse, "description": "Not in the provider's format; nothing stored."},
        401: {"model": ErrorResponse, "description": "Wrong path secret."},
        404: {"model": ErrorResponse, "description": "Unknown or unconfigured provider."},
        413: {"model": ErrorResponse, "description": "Body over the webhook cap."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The provider's delivery (Garmin Health API push), byte for byte.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def receive_unsigned_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    provider: ProviderName,
    path_secret: Annotated[str, Path(min_length=1, max_length=256)],
) -> WebhookReceiptPublic | JSONResponse:
    """The inbox for a provider that signs nothing (``garmin``): the secret path segment configured at the
    provider authenticates the delivery, and only records naming a linked account become readings."""
    return await _receive(request, session, settings, provider, {PATH_SECRET_HEADER: path_secret})


@router.get(
    "/{provider}",
    response_model=WebhookChallengePublic,
    responses={
        401: {"model": ErrorResponse, "description": "Wrong verification token."},
        404: {"model": ErrorResponse, "description": "No such handshake, or the provider is not configured."},
    },
)
async def verify_webhook_endpoint(
    settings: SettingsDep,
    provider: ProviderName,
    verification_token: Annotated[str, Query(max_length=512)] = "",
    challenge: Annotated[str, Query(max_length=512)] = "",
) -> WebhookChallengePublic:
    """Oura's subscription handshake: ``?verification_token=…&challenge=…`` → ``{"challenge": …}`` when the
    token is ours (``RHYTHM_OURA_VERIFICATION_TOKEN``)."""
    answer = service.answer_challenge(
        settings, provider, {"verification_token": verification_token, "challenge": challenge}
    )
    return WebhookChallengePublic(challenge=answer["challenge"])

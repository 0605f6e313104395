"""One error shape for every 4xx/5xx: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = structlog.get_logger(__name__)

# Machine-readable codes clients can switch on; the message is for humans and may change.
_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}


def code_for_status(status: int) -> str:
    return _CODES.get(status, "client_error" if status < 500 else "server_error")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The documented error shape (used in OpenAPI ``responses``)."""

    error: ErrorBody


class AppError(Exception):
    """Raise from services and dependencies to answer with the error shape."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code or code_for_status(status_code)
        self.message = message
        self.details = details
        self.headers = headers


class NotFoundError(AppError):
    def __init__(self, message: str = "Not found") -> None:
        super().__init__(404, message)


def error_payload(
    status_code: int, message: str, *, code: str | None = None, details: Any = None
) -> dict[str, Any]:
    return {"error": {"code": code or code_for_status(status_code), "message": message, "details": details}}


def error_response(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        jsonable_encoder(error_payload(status_code, message, code=code, details=details)),
        status_code=status_code,
        headers=headers,
    )


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(
        exc.status_code, exc.message, code=exc.code, details=exc.details, headers=exc.headers
    )


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str | None:
    """Every method some route serves at this path. Starlette answers a 405 with the methods of the first
    route that matched the path only, so ``/v1/users/me`` (a GET and a PATCH route) would claim GET alone.
    Each method is probed through the routers' own matching, so included routers and converters count."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed) if allowed else None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.detail, str):
        message, details = exc.detail, None
    else:
        message, details = HTTPStatus(exc.status_code).phrase, exc.detail
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405 and (allowed := _allowed_methods(request)) is not None:
        headers = {**(headers or {}), "Allow": allowed}
    return error_response(exc.status_code, message, details=details, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
        for error in exc.errors()
    ]
    return error_response(422, "Request validation failed", details=details)


async def unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    """The 500: the traceback is logged with the request id, the client gets the error shape and the id."""
    # The traceback goes to the log, never to the client; the request id ties the two together.
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled_error", path=request.url.path, request_id=request_id, exc_info=exc)
    headers = {"X-Request-ID": request_id} if request_id else None
    return error_response(500, "Internal server error", headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, unhandled_error)

"""The ASGI application: ``create_app(settings)`` wires settings, database, errors, middleware and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.calendar import endpoints as calendar
from app.connections import endpoints as connections
from app.console.mount import install_console
from app.core import migrate
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging
from app.core.middleware import BodySizeLimitMiddleware, Metrics, RequestContextMiddleware
from app.core.races import install_race_handlers
from app.core.ratelimit import RATE_LIMITED_RESPONSES, RateLimiter, RateLimitMiddleware
from app.core.timebounds import TimeBoundsMiddleware
from app.feedback import endpoints as feedback
from app.finetune import endpoints as finetune_ops
from app.ingest import endpoints as ingest
from app.meters import endpoints as meters
from app.ops import endpoints as ops
from app.ops.checks import broker_ready, database_ready
from app.recommend import endpoints as recommend
from app.recommend.lifespan import policy_lifespan
from app.users import endpoints as users
from app.webhooks import endpoints as webhooks
from app.webhooks import ops_endpoints as webhook_ops


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Tests pass their own ``Settings``; production reads the environment.

    ``app.state`` holds ``settings``, ``db`` (:class:`~app.core.db.Database`, set while the lifespan runs),
    ``metrics``, ``rate_limiter`` (:class:`~app.core.ratelimit.RateLimiter`, or ``None`` when disabled) and
    ``readiness_checks`` (name → async callable returning ``True`` when ready;
    features such as the policy backend add theirs).
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.json_logs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.async_database_url)
        app.state.db = db
        app.state.readiness_checks.setdefault("database", partial(database_ready, db))
        try:
            await migrate.require_schema(db.engine, settings.readiness_timeout.total_seconds())
            async with policy_lifespan(app, settings):
                yield
        finally:
            await db.dispose()
            if app.state.rate_limiter is not None:
                await app.state.rate_limiter.aclose()

    app = FastAPI(
        title="Rhythm",
        version="0.1.0",
        summary="A model of the person a life-management assistant serves.",
        lifespan=lifespan,
        # Served below from local files: FastAPI's default pages load Swagger UI and ReDoc from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    timeout = settings.readiness_timeout.total_seconds()
    app.state.readiness_checks = {"broker": partial(broker_ready, settings.broker_url, timeout)}

    # None when RHYTHM_RATE_LIMIT_ENABLED=false: then no middleware at all, not one that always admits.
    app.state.rate_limiter = (
        RateLimiter(settings, app.state.metrics.registry) if settings.rate_limit_enabled else None
    )

    install_error_handlers(app)
    if app.state.rate_limiter is not None:
        app.add_middleware(RateLimitMiddleware, limiter=app.state.rate_limiter)
    install_race_handlers(app)
    app.add_middleware(TimeBoundsMiddleware, max_clock_skew=settings.max_clock_skew)
    # Added last = outermost: every response, a 413 included, gets a request id, an access log line, metrics.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)

    app.include_router(ops.router)
    app.include_router(users.router, responses=RATE_LIMITED_RESPONSES)
    app.include_router(recommend.router, responses=RATE_LIMITED_RESPONSES)
    app.include_router(feedback.router, responses=RATE_LIMITED_RESPONSES)
    app.include_router(webhooks.router, responses=RATE_LIMITED_RESPONSES)
    app.include_router(webhook_ops.router, responses=RATE_LIMITED_RESPONSES)
    app.include_router(connections.router, responses=RATE_LIMITED_RESPONSES)
    app.include_router(ingest.router, responses=RATE_LIMITED_RESPONSES)
    app.include_router(calendar.router, responses=RATE_LIMITED_RESPONSES)
    install_console(app, settings)
    app.include_router(meters.router, responses=RATE_LIMITED_RESPONSES)
    app.include_router(finetune_ops.router, responses=RATE_LIMITED_RESPONSES)
    _add_docs(app)
    _document_undecodable_bodies(app)
    return app


# Swagger UI and ReDoc assets shipped by the fastapi-offline package (kept current with swagger-ui-dist 5 and
# redoc 2): /docs works without internet access and loads nothing from third parties.
DOCS_ASSETS = "/static/docs"


def _add_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI), ``/redoc`` and ``/`` (a pointer to both), all from local assets."""
    app.mount(DOCS_ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> dict[str, str]:
        """Where to start: the interactive docs and the OpenAPI document."""
        base = request.scope.get("root_path", "")
        return {
            "name": app.title,
            "version": app.version,
            "docs": f"{base}/docs",
            "redoc": f"{base}/redoc",
            "openapi": f"{base}{openapi_url}",
        }

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{base}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{base}{oauth2_redirect_url}",
            swagger_js_url=f"{base}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{base}{DOCS_ASSETS}/favicon.png",
            # Swagger UI would otherwise send the schema to validator.swagger.io for its badge.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{base}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


_UNDECODABLE_BODY: dict[str, Any] = {
    "description": "The body is not valid UTF-8, so it cannot be read as JSON (malformed JSON is a 422).",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
}


def _document_undecodable_bodies(app: FastAPI) -> None:
    """Add the 400 FastAPI answers for undecodable bodies to every operation that takes a body."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path_item in schema.get("paths", {}).values():
                for operation in path_item.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        operation.setdefault("responses", {}).setdefault("400", _UNDECODABLE_BODY)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]

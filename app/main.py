"""The ASGI application: ``create_app(settings)`` wires settings, database, errors, middleware and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from app.core import migrate
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging
from app.core.middleware import BodySizeLimitMiddleware, Metrics, RequestContextMiddleware
from app.feedback import endpoints as feedback
from app.ops import endpoints as ops
from app.ops.checks import broker_ready, database_ready
from app.recommend import endpoints as recommend
from app.recommend.lifespan import policy_lifespan
from app.users import endpoints as users


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Tests pass their own ``Settings``; production reads the environment.

    ``app.state`` holds ``settings``, ``db`` (:class:`~app.core.db.Database`, set while the lifespan runs),
    ``metrics`` and ``readiness_checks`` (name → async callable returning ``True`` when ready;
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

    app = FastAPI(
        title="Rhythm",
        version="0.1.0",
        summary="A model of the person a life-management assistant serves.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    timeout = settings.readiness_timeout.total_seconds()
    app.state.readiness_checks = {"broker": partial(broker_ready, settings.broker_url, timeout)}

    install_error_handlers(app)
    # Added last = outermost: every response, a 413 included, gets a request id, an access log line, metrics.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)

    app.include_router(ops.router)
    app.include_router(users.router)
    app.include_router(recommend.router)
    app.include_router(feedback.router)
    return app

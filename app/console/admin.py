"""Plain read-only table views for operators, by SQLAdmin, at ``/console/admin``.

Nothing can be created, edited, deleted, imported or exported here, and the columns that hold secrets or raw
provider data (token hashes, encrypted OAuth tokens, webhook bodies and headers, provider data, stored
idempotent responses) are left out of every list and detail page: each view names the columns of both (an
allow-list, so a column added to a model later stays hidden until someone decides to show it). SQLAdmin's
file download and preview routes serve nothing. Access rides on the console's operator session: anyone else
is sent to the sign-in page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from fastapi import FastAPI, HTTPException
from sqladmin import Admin, ModelView
from sqladmin.authentication import AuthenticationBackend
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.console.sessions import COOKIE_NAME, is_ops_session, load_session
from app.core.config import Settings
from app.models import (
    Adapter,
    ApiToken,
    CalendarEvent,
    DeviceConnection,
    Feedback,
    FinetuneJob,
    MeterSnapshot,
    Recommendation,
    User,
    WebhookEvent,
)

ADMIN_PATH = "/console/admin"


class _ReadOnly(ModelView):
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    page_size = 50
    column_default_sort: ClassVar[Any] = [("created_at", True)]

    async def get_object_filepath(self, identifier: str, column_name: str) -> Path:
        # SQLAdmin's download/preview routes read any column's value as a file path and serve that file if it
        # lies under the working directory: a calendar event titled ".env" would hand over the server's
        # secrets. No table here stores files, so there is nothing to serve.
        raise HTTPException(status_code=404)


class UserAdmin(_ReadOnly, model=User):
    column_list: ClassVar[Any] = [User.id, User.timezone, User.created_at]
    column_details_list = column_list


class ApiTokenAdmin(_ReadOnly, model=ApiToken):
    name_plural = "API tokens"
    column_list: ClassVar[Any] = [
        ApiToken.id, ApiToken.user_id, ApiToken.prefix, ApiToken.created_at, ApiToken.last_used_at,
        ApiToken.revoked_at,
    ]  # fmt: skip
    column_details_list = column_list


class DeviceConnectionAdmin(_ReadOnly, model=DeviceConnection):
    column_list: ClassVar[Any] = [
        DeviceConnection.id, DeviceConnection.user_id, DeviceConnection.provider, DeviceConnection.status,
        DeviceConnection.status_reason, DeviceConnection.token_expires_at, DeviceConnection.scopes,
        DeviceConnection.created_at, DeviceConnection.updated_at, DeviceConnection.revoked_at,
    ]  # fmt: skip
    column_details_list = column_list


class WebhookEventAdmin(_ReadOnly, model=WebhookEvent):
    column_list: ClassVar[Any] = [
        WebhookEvent.id, WebhookEvent.source, WebhookEvent.external_id, WebhookEvent.user_id,
        WebhookEvent.received_at, WebhookEvent.handled_at, WebhookEvent.attempts, WebhookEvent.error,
    ]  # fmt: skip
    column_details_list = column_list
    column_default_sort: ClassVar[Any] = [("received_at", True)]


class AdapterAdmin(_ReadOnly, model=Adapter):
    column_list: ClassVar[Any] = [
        Adapter.id, Adapter.user_id, Adapter.name, Adapter.version, Adapter.status, Adapter.base_model,
        Adapter.n_interactions, Adapter.created_at,
    ]  # fmt: skip
    column_details_list: ClassVar[Any] = [
        *column_list, Adapter.uri, Adapter.trained_from, Adapter.trained_to, Adapter.metrics,
    ]  # fmt: skip


class FinetuneJobAdmin(_ReadOnly, model=FinetuneJob):
    column_list: ClassVar[Any] = [
        FinetuneJob.id, FinetuneJob.user_id, FinetuneJob.status, FinetuneJob.attempt, FinetuneJob.created_at,
        FinetuneJob.started_at, FinetuneJob.finished_at, FinetuneJob.error,
    ]  # fmt: skip
    column_details_list: ClassVar[Any] = [
        *column_list, FinetuneJob.max_attempts, FinetuneJob.iso_week, FinetuneJob.reason,
        FinetuneJob.base_model, FinetuneJob.params, FinetuneJob.heartbeat_at, FinetuneJob.lease_owner,
        FinetuneJob.lease_expires_at, FinetuneJob.enqueued_at, FinetuneJob.adapter_id,
        FinetuneJob.adapter_uri, FinetuneJob.metrics, FinetuneJob.gate,
    ]  # fmt: skip


class RecommendationAdmin(_ReadOnly, model=Recommendation):
    column_list: ClassVar[Any] = [
        Recommendation.id, Recommendation.user_id, Recommendation.at, Recommendation.day, Recommendation.slot,
        Recommendation.action, Recommendation.propensity, Recommendation.backend, Recommendation.adapter,
    ]  # fmt: skip
    column_details_list: ClassVar[Any] = [
        *column_list, Recommendation.probabilities, Recommendation.temperature, Recommendation.model,
        Recommendation.renderer_version, Recommendation.created_at,
    ]  # fmt: skip


class FeedbackAdmin(_ReadOnly, model=Feedback):
    column_list: ClassVar[Any] = [
        Feedback.id, Feedback.user_id, Feedback.recommendation_id, Feedback.response, Feedback.reward,
        Feedback.created_at,
    ]  # fmt: skip
    column_details_list: ClassVar[Any] = [*column_list, Feedback.rescheduled_to, Feedback.source]


class CalendarEventAdmin(_ReadOnly, model=CalendarEvent):
    column_list: ClassVar[Any] = [
        CalendarEvent.id, CalendarEvent.user_id, CalendarEvent.source, CalendarEvent.title,
        CalendarEvent.starts_at, CalendarEvent.ends_at, CalendarEvent.action,
    ]  # fmt: skip
    column_details_list: ClassVar[Any] = [
        *column_list, CalendarEvent.all_day, CalendarEvent.confidence, CalendarEvent.action_source,
        CalendarEvent.created_at,
    ]  # fmt: skip


class MeterSnapshotAdmin(_ReadOnly, model=MeterSnapshot):
    column_list: ClassVar[Any] = [
        MeterSnapshot.id, MeterSnapshot.user_id, MeterSnapshot.taken_at, MeterSnapshot.source,
    ]  # fmt: skip
    column_details_list: ClassVar[Any] = [
        *column_list,
        MeterSnapshot.engine_version,
        MeterSnapshot.provenance,
    ]


VIEWS: tuple[type[ModelView], ...] = (
    UserAdmin,
    ApiTokenAdmin,
    DeviceConnectionAdmin,
    WebhookEventAdmin,
    AdapterAdmin,
    FinetuneJobAdmin,
    RecommendationAdmin,
    FeedbackAdmin,
    CalendarEventAdmin,
    MeterSnapshotAdmin,
)


class ConsoleOpsBackend(AuthenticationBackend):
    """Admits a request carrying the console's operator session; its own login page is never used."""

    def __init__(
        self, app: FastAPI, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        # SQLAdmin keeps a Starlette session of its own (unused by us, but its middleware is required).
        super().__init__(
            secret_key=settings.secret_key.get_secret_value(),
            path=ADMIN_PATH,
            https_only=settings.console_secure_cookie,
        )
        self._app = app
        self._settings = settings
        self._sessionmaker = sessionmaker

    async def authenticate(self, request: Request) -> Response | bool:
        # The API's engine exists only while its lifespan runs; bind SQLAdmin's sessions to it on first use.
        db = getattr(self._app.state, "db", None)
        if db is not None and self._sessionmaker.kw.get("bind") is not db.engine:
            self._sessionmaker.configure(bind=db.engine)
        payload = load_session(self._settings, request.cookies.get(COOKIE_NAME))
        if payload is not None and is_ops_session(self._settings, payload):
            return True
        return RedirectResponse("/console/login", status_code=303)

    async def login(self, request: Request) -> Response | bool:
        return RedirectResponse("/console/login", status_code=303)

    async def logout(self, request: Request) -> Response | bool:
        return RedirectResponse("/console", status_code=303)


class NoStoreHeaders:
    """The console pages' caching and framing rules on SQLAdmin's pages: they list personal data (calendar
    titles, device states), which no shared cache or back button after sign-out should keep, and no other
    site may frame. (No script policy: SQLAdmin's templates are not ours to vouch for.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "no-store"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["Content-Security-Policy"] = "frame-ancestors 'none'"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_admin(app: FastAPI, settings: Settings) -> Admin:
    sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(expire_on_commit=False)
    admin = Admin(
        app,
        session_maker=sessionmaker,
        base_url=ADMIN_PATH,
        title="Rhythm tables",
        authentication_backend=ConsoleOpsBackend(app, settings, sessionmaker),
        middlewares=[Middleware(NoStoreHeaders)],
    )
    for view in VIEWS:
        admin.add_view(view)
    return admin

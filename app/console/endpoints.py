"""``/console``: server-rendered pages for a person and for operators (thin routes; work in ``service``).

Pages are HTML, not part of the JSON API, so they stay out of the OpenAPI document; every route still says
what it does in its docstring. Forms post back and redirect (303) to a page that shows a fixed notice, so a
reload never re-submits and no request text is ever reflected into the page.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.console import service
from app.console.sessions import (
    ConsoleViewer,
    CsrfViewer,
    OpsViewer,
    OptionalViewer,
    PageNotFound,
    Viewer,
    close_session,
    find_token,
    is_admin_token,
    login_csrf,
    login_csrf_valid,
    open_ops_session,
    open_user_session,
    set_login_cookie,
)
from app.core.auth import Principal, SettingsDep
from app.core.db import SessionDep
from app.core.errors import NotFoundError
from app.models import FinetuneStatus
from app.users import service as users
from domain import Action

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# Scripts and styles only from our own origin (htmx and Chart.js are vendored); no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

NOTICES: dict[str, str] = {
    "event_saved": "The event's action was saved.",
    "job_started": "Fine-tune job queued.",
    "job_already_open": "That user already has a queued or running fine-tune job.",
    "rolled_back": "Adapter rolled back: the previous version is active again.",
    "no_active_adapter": "That user has no active adapter to roll back.",
    "adapter_changed": "That adapter was already rolled back (the form was sent twice or the page was old); "
    "nothing changed.",
    "rolled_back_to_base": "Adapter retired: the user gets the base model until their next fine-tune.",
    "deploy_failed": "The model server did not load the previous adapter; nothing changed.",
    "replayed": "Webhook event queued for processing again.",
    "signed_out": "You are signed out.",
    "deleted": "The account and all its data were deleted.",
    "expired": "Your session ended (expired, token rotated or account deleted): sign in again.",
}


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    viewer: Viewer | None = None,
) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    response = templates.TemplateResponse(
        request,
        name,
        {"viewer": viewer, "notice": notice, **context},
        status_code=status_code,
    )
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    # Pages hold personal data: never kept by shared caches or the back button after sign-out.
    response.headers["Cache-Control"] = "no-store"
    return response


def _redirect(url: str, **params: str) -> RedirectResponse:
    query = f"?{urlencode(params)}" if params else ""
    return RedirectResponse(url + query, status_code=303)


def _person_url(user_id: uuid.UUID) -> str:
    return f"/console/users/{user_id}"


@router.get("")
async def home(viewer: OptionalViewer) -> RedirectResponse:
    """Where a browser lands: the viewer's own page, the ops page, or the sign-in form."""
    if viewer is None:
        return _redirect("/console/login")
    if viewer.is_ops:
        return _redirect("/console/ops")
    assert viewer.user is not None
    return _redirect(_person_url(viewer.user.id))


@router.get("/login")
async def login_form(request: Request, settings: SettingsDep, viewer: OptionalViewer) -> HTMLResponse:
    """The sign-in form: a user token or the admin token."""
    csrf, cookie = login_csrf(request, settings)
    response = render(request, "login.html", {"csrf_token": csrf, "error": None}, viewer=viewer)
    if cookie is not None:
        set_login_cookie(response, settings, cookie)
    return response


@router.post("/login")
async def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=512)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Exchange a token for a session cookie; the token itself is never stored in the browser."""
    csrf, cookie = login_csrf(request, settings)
    metrics = request.app.state.console_metrics
    error: str | None = None
    if not login_csrf_valid(request, settings, csrf_token):
        error = "The form expired; please try again."
        metrics.sign_ins.labels("none", "csrf_rejected").inc()
    elif is_admin_token(settings, token.strip()):
        response: Response = _redirect("/console/ops")
        open_ops_session(response, settings)
        metrics.sign_ins.labels("ops", "ok").inc()
        log.info("console_signed_in", kind="ops")
        return response
    elif (found := await find_token(session, token.strip())) is not None:
        api_token, user = found
        response = _redirect(_person_url(user.id))
        open_user_session(response, settings, user.id, api_token.id)
        metrics.sign_ins.labels("user", "ok").inc()
        log.info("console_signed_in", kind="user", user_id=str(user.id), token_prefix=api_token.prefix)
        return response
    else:
        error = "That token is not valid (or was revoked)."
        metrics.sign_ins.labels("none", "invalid_token").inc()
        log.info("console_sign_in_refused")
    page = render(request, "login.html", {"csrf_token": csrf, "error": error}, status_code=401)
    if cookie is not None:
        set_login_cookie(page, settings, cookie)
    return page


@router.post("/logout")
async def logout(settings: SettingsDep, _viewer: CsrfViewer) -> RedirectResponse:
    """End this browser's session."""
    response = _redirect("/console/login", notice="signed_out")
    close_session(response, settings)
    return response


async def _visible(session: SessionDep, viewer: Viewer, user_id: uuid.UUID) -> Any:
    # Another user's page is a 404 exactly like an unknown one: nothing tells the two apart.
    if not viewer.may_see(user_id):
        raise PageNotFound
    try:
        return await service.visible_user(session, user_id)
    except service.ConsoleNotFound:
        raise PageNotFound from None


@router.get("/users/{user_id:uuid}")
async def person(
    request: Request, session: SessionDep, viewer: ConsoleViewer, user_id: uuid.UUID
) -> HTMLResponse:
    """A person's page: meters, recommendations and responses, beliefs, calendar, devices, adapters."""
    user = await _visible(session, viewer, user_id)
    view = await service.person_view(session, user)
    return render(request, "person.html", {"view": view}, viewer=viewer)


@router.post("/users/{user_id:uuid}/calendar-events/{event_id:uuid}/action")
async def correct_event(
    session: SessionDep,
    viewer: CsrfViewer,
    user_id: uuid.UUID,
    event_id: uuid.UUID,
    action: Annotated[str, Form(max_length=32)] = "",
) -> RedirectResponse:
    """Correct the action a calendar event was classified as (empty: not an action)."""
    await _visible(session, viewer, user_id)
    try:
        chosen = Action(action) if action else None
    except ValueError:
        raise PageNotFound from None
    try:
        await service.correct_event_action(session, user_id, event_id, chosen)
    except service.ConsoleNotFound:
        raise PageNotFound from None
    return _redirect(_person_url(user_id), notice="event_saved")


@router.get("/users/{user_id:uuid}/export")
async def export(session: SessionDep, viewer: ConsoleViewer, user_id: uuid.UUID) -> Response:
    """Download everything stored about the person (the same JSON as ``GET /v1/users/me/export``)."""
    user = await _visible(session, viewer, user_id)
    data = await users.export_user(session, user)
    return Response(
        data.model_dump_json(indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="rhythm-export-{user_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/users/{user_id:uuid}/delete")
async def delete_form(
    request: Request, session: SessionDep, viewer: ConsoleViewer, user_id: uuid.UUID
) -> HTMLResponse:
    """Confirm deletion of an account: asks for the token again."""
    user = await _visible(session, viewer, user_id)
    return render(request, "delete.html", {"user": user, "error": None}, viewer=viewer)


@router.post("/users/{user_id:uuid}/delete")
async def delete(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: CsrfViewer,
    user_id: uuid.UUID,
    token: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    """Delete the account and all its data, once the viewer typed their token (or the admin token) again."""
    user = await _visible(session, viewer, user_id)
    confirmed = False
    if viewer.is_ops:
        confirmed = is_admin_token(settings, token.strip())
    elif token.strip():
        found = await find_token(session, token.strip())
        confirmed = found is not None and found[1].id == user_id
    if not confirmed:
        return render(
            request,
            "delete.html",
            {"user": user, "error": "That token does not match: nothing was deleted."},
            status_code=403,
            viewer=viewer,
        )
    caller = Principal(is_admin=True) if viewer.is_ops else Principal(user=user)
    await users.delete_user(session, settings, caller, user_id)
    log.info("console_user_deleted", user_id=str(user_id), by="ops" if viewer.is_ops else "user")
    if viewer.is_ops:
        return _redirect("/console/ops", notice="deleted")
    response = _redirect("/console/login", notice="deleted")
    close_session(response, settings)
    return response


def _parse_status(value: str | None) -> FinetuneStatus | None:
    if not value:
        return None
    try:
        return FinetuneStatus(value)
    except ValueError:
        return None


@router.get("/ops")
async def ops(
    request: Request,
    session: SessionDep,
    viewer: OpsViewer,
    status: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    """The operators' page: fine-tune jobs, adapters per user, the webhook inbox, the policy's health."""
    view = await service.ops_view(
        session,
        _parse_status(status),
        policy=getattr(request.app.state, "policy", None),
        registry=request.app.state.metrics.registry,
    )
    # htmx asks for the jobs table alone when the status filter changes.
    template = "_jobs.html" if request.headers.get("HX-Request") == "true" else "ops.html"
    return render(request, template, {"view": view}, viewer=viewer)


@router.post("/ops/finetune-jobs")
async def start_job(
    session: SessionDep,
    settings: SettingsDep,
    viewer: CsrfViewer,
    user_id: Annotated[str, Form(max_length=64)] = "",
) -> RedirectResponse:
    """Queue a fine-tune job for a user."""
    if not viewer.is_ops:
        raise PageNotFound
    try:
        target = uuid.UUID(user_id.strip())
        job_id = await service.start_finetune_job(session, settings, target)
    except (ValueError, service.ConsoleNotFound):
        raise PageNotFound from None
    except service.ConsoleConflict as conflict:
        return _redirect("/console/ops", notice=conflict.notice)
    log.info("console_finetune_job_queued", user_id=str(target), job_id=str(job_id))
    return _redirect("/console/ops", notice="job_started")


@router.post("/ops/users/{user_id:uuid}/adapters/rollback")
async def rollback(
    session: SessionDep,
    settings: SettingsDep,
    viewer: CsrfViewer,
    user_id: uuid.UUID,
    retire: Annotated[str, Form(max_length=64)] = "",
) -> RedirectResponse:
    """Retire a user's active adapter and activate the previous version (or the base model).

    The form names the adapter it showed as active (``retire``): a double click or a resubmitted form finds
    it already retired and changes nothing, instead of going one more version back."""
    if not viewer.is_ops:
        raise PageNotFound
    try:
        expected = uuid.UUID(retire) if retire else None
    except ValueError:
        expected = None  # not one of our forms: roll back whatever is active, as before
    try:
        result = await service.rollback_adapter(session, settings, user_id, expected)
    except service.ConsoleNotFound:
        raise PageNotFound from None
    except service.ConsoleConflict as conflict:
        return _redirect("/console/ops", notice=conflict.notice)
    active = result.active.name if result.active is not None else None
    log.info("console_adapter_rolled_back", user_id=str(user_id), retired=result.retired.name, active=active)
    return _redirect("/console/ops", notice="rolled_back" if active else "rolled_back_to_base")


@router.post("/ops/webhook-events/{event_id:uuid}/replay")
async def replay(
    session: SessionDep, settings: SettingsDep, viewer: CsrfViewer, event_id: uuid.UUID
) -> RedirectResponse:
    """Queue an inbox event's processing again (through the inbox's own replay)."""
    if not viewer.is_ops:
        raise PageNotFound
    try:
        await service.replay_event(session, settings, event_id)
    except NotFoundError:
        raise PageNotFound from None
    return _redirect("/console/ops", notice="replayed")

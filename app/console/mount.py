"""Wire the console into the app: its routes, vendored static files, error pages and SQLAdmin tables."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from app.console.admin import install_admin
from app.console.endpoints import render, router
from app.console.metrics import ConsoleMetrics
from app.console.sessions import COOKIE_NAME, CsrfRejected, PageNotFound, SignInRequired
from app.core.config import Settings

STATIC_DIR = Path(__file__).parent / "static"


async def _sign_in(request: Request, _exc: Exception) -> Response:
    # A cookie that no longer opens a session (expired, token rotated, user deleted) says why on the form.
    notice = "?notice=expired" if COOKIE_NAME in request.cookies else ""
    return RedirectResponse(f"/console/login{notice}", status_code=303)


async def _not_found(request: Request, _exc: Exception) -> Response:
    return render(
        request, "error.html", {"title": "Not found", "message": "There is no such page."}, status_code=404
    )


async def _csrf(request: Request, _exc: Exception) -> Response:
    message = "The form was missing its security token, so nothing was changed. Reload the page and retry."
    return render(request, "error.html", {"title": "Refused", "message": message}, status_code=403)


def install_console(app: FastAPI, settings: Settings) -> None:
    app.state.console_metrics = ConsoleMetrics(app.state.metrics.registry)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(PageNotFound, _not_found)
    app.add_exception_handler(CsrfRejected, _csrf)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    install_admin(app, settings)
    app.include_router(router)

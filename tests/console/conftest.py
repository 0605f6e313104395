"""Console fixtures: an https client on the real app (so the Secure cookie travels as in production),
sign-in helpers, and settings with their own broker key prefix (replays enqueue real Celery messages)."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from tests.support import make_settings

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url, broker_key_prefix=f"console-{secrets.token_hex(4)}:")


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    """Post the sign-in form as a browser would (GET the form for its CSRF token first)."""
    form = await client.get("/console/login")
    return await client.post("/console/login", data={"token": token, "csrf_token": csrf_of(form.text)})


def bearer_token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
async def browser_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second cookie jar on the same app, over https like a deployed console."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://rhythm.test") as http:
        yield http


async def page_csrf(client: httpx.AsyncClient, user_id: uuid.UUID | None = None) -> str:
    page = await client.get(f"/console/users/{user_id}" if user_id else "/console/ops")
    assert page.status_code == 200, page.text[:500]
    return csrf_of(page.text)

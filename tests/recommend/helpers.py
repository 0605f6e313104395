"""Helpers shared by the recommend tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.core.config import Settings
from tests.support import admin_headers_for, app_client, create_user_via_api, running_app


@asynccontextmanager
async def app_with(
    settings: Settings, **overrides: object
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The real app with some settings changed (e.g. the vLLM backend at a given URL), and a client for it."""
    async with running_app(settings.model_copy(update=overrides)) as app, app_client(app) as client:
        yield app, client


async def new_user(client: httpx.AsyncClient, settings: Settings, timezone: str = "UTC") -> dict[str, str]:
    """Create a user through the API; returns its bearer headers."""
    _, headers = await create_user_via_api(client, admin_headers_for(settings), timezone)
    return headers


def metric(text: str, line_prefix: str) -> float:
    """The value of the first Prometheus sample line starting with ``line_prefix`` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0

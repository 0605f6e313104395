"""Fixtures of the wearable tests: settings with every provider configured, an app on them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.core.config import Settings
from tests.support import admin_headers_for, app_client, create_user_via_api, running_app
from tests.wearables.payloads import wearable_settings
from tests.wearables.provider_server import ProviderServer, provider_server
from tests.wearables.support import NewUser
from tests.webhooks.terra import purge_broker


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with provider_server() as running:
        yield running


@pytest.fixture
def wearables(settings: Settings, server: ProviderServer) -> Iterator[Settings]:
    configured = wearable_settings(settings, server.url)
    yield configured
    purge_broker(configured)


@pytest.fixture
async def wclient(wearables: Settings, clean_database: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(wearables) as app, app_client(app) as client:
        yield client


@pytest.fixture
def new_user(wclient: httpx.AsyncClient, wearables: Settings) -> NewUser:
    async def create() -> tuple[uuid.UUID, dict[str, str]]:
        return await create_user_via_api(wclient, admin_headers_for(wearables))

    return create

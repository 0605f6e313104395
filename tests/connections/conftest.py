"""Fixtures of the connection tests: a local provider server, settings pointing every provider at it."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.core.config import Settings
from tests.connections.provider_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    TERRA_API_KEY,
    TERRA_DEV_ID,
    ProviderServer,
    provider_server,
)
from tests.support import CreateUser, admin_headers_for, app_client, create_user_via_api, running_app
from tests.webhooks.terra import purge_broker

# Where each provider revokes on the local server (their styles differ: bridges.oauth.providers.RevokeStyle).
_REVOKE_PATHS = {
    "whoop": "/whoop/access",
    "oura": "/oura/revoke",
    "google_health": "/revoke",
    "google": "/revoke",
}


def provider_settings(settings: Settings, server: ProviderServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "public_base_url": "http://rhythm.test",
        "broker_key_prefix": f"rhythm-test-{secrets.token_hex(6)}:",
        "terra_dev_id": TERRA_DEV_ID,
        "terra_api_key": SecretStr(TERRA_API_KEY),
        "terra_api_base_url": server.base_url,
        "terra_rest_api_base_url": server.base_url,
        "revocation_retry_backoff": timedelta(seconds=0.1),
        "revocation_retry_backoff_max": timedelta(seconds=0.5),
        "oauth_http_timeout": timedelta(seconds=5),
    }
    for prefix, revoke_path in _REVOKE_PATHS.items():
        values[f"{prefix}_client_id"] = CLIENT_ID
        values[f"{prefix}_client_secret"] = SecretStr(CLIENT_SECRET)
        values[f"{prefix}_authorize_url"] = f"{server.base_url}/authorize"
        values[f"{prefix}_token_url"] = f"{server.base_url}/token"
        values[f"{prefix}_revoke_url"] = f"{server.base_url}{revoke_path}"
        values[f"{prefix}_api_base_url"] = server.base_url
    values.update(overrides)
    return settings.model_copy(update=values)


@pytest.fixture
def provider() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


@pytest.fixture
def connect_settings(settings: Settings, provider: ProviderServer) -> Iterator[Settings]:
    configured = provider_settings(settings, provider)
    yield configured
    purge_broker(configured)


@pytest.fixture
async def connect_app(connect_settings: Settings, clean_database: str) -> AsyncIterator[FastAPI]:
    async with running_app(connect_settings) as application:
        yield application


@pytest.fixture
async def connect_client(connect_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(connect_app) as http:
        yield http


@pytest.fixture
def connect_user(connect_client: httpx.AsyncClient, connect_settings: Settings) -> CreateUser:
    async def _create(timezone: str = "UTC") -> tuple[uuid.UUID, dict[str, str]]:
        return await create_user_via_api(connect_client, admin_headers_for(connect_settings), timezone)

    return _create

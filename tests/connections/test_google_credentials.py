"""google-auth credentials from a stored Google connection, refreshed by the real library locally."""

from __future__ import annotations

from datetime import timedelta

import httpx
from google.auth.transport.requests import Request
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.crypto import ACCESS_TOKEN_CONTEXT
from app.core.db import sync_sessionmaker
from app.models import DeviceConnection
from app.models.base import utcnow
from bridges.connections import cipher_for
from bridges.oauth.google import credentials_for, store_credentials
from tests.connections.flow import link
from tests.connections.provider_server import CLIENT_ID, ProviderServer
from tests.support import CreateUser


async def test_credentials_refreshed_by_google_auth_are_stored_encrypted(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    _, headers = await connect_user()
    assert (await link(connect_client, headers, "google")).status_code == 200
    grant = provider.state.grants[-1]
    cipher = cipher_for(connect_settings.secret_key.get_secret_value())
    with sync_sessionmaker(connect_settings.sync_database_url)() as session:
        connection = session.query(DeviceConnection).one()
        credentials = credentials_for(connection, connect_settings, cipher)
        assert credentials.token == grant.access_token and credentials.valid
        assert credentials.client_id == CLIENT_ID and credentials.token_uri == f"{provider.base_url}/token"
        assert "https://www.googleapis.com/auth/calendar.readonly" in credentials.scopes
        # Nothing changed yet: nothing to store.
        assert store_credentials(connection, credentials, cipher) is False
        # What the library does on a 401 mid-sync: refresh through the token endpoint by itself.
        credentials.refresh(Request())  # type: ignore[no-untyped-call]
        assert credentials.token == grant.access_token  # the server rotated the grant's tokens
        assert store_credentials(connection, credentials, cipher) is True
        session.commit()
    db_session.expire_all()
    stored = await db_session.get(DeviceConnection, connection.id)
    assert stored is not None and stored.access_token_encrypted is not None
    assert cipher.decrypt(stored.access_token_encrypted, context=ACCESS_TOKEN_CONTEXT) == grant.access_token
    assert stored.token_expires_at is not None and stored.token_expires_at > utcnow() + timedelta(minutes=55)


async def test_credentials_for_an_expiring_token_start_refreshed(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    _, headers = await connect_user()
    assert (await link(connect_client, headers, "google")).status_code == 200
    first = provider.state.grants[-1].access_token
    await db_session.execute(
        update(DeviceConnection).values(token_expires_at=utcnow() + timedelta(seconds=10))
    )
    await db_session.commit()
    cipher = cipher_for(connect_settings.secret_key.get_secret_value())
    with sync_sessionmaker(connect_settings.sync_database_url)() as session:
        connection = session.query(DeviceConnection).one()
        credentials = credentials_for(connection, connect_settings, cipher)
        session.commit()
    assert credentials.token == provider.state.grants[-1].access_token != first
    assert credentials.valid

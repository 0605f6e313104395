"""Stored tokens stay usable: refreshed before expiry, and a refused refresh asks the user to re-consent."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.crypto import ACCESS_TOKEN_CONTEXT, REFRESH_TOKEN_CONTEXT
from app.core.db import sync_sessionmaker
from app.models import DeviceConnection
from app.models.base import utcnow
from bridges.connections import ConnectionStatus, cipher_for
from bridges.oauth import ProviderUnavailable, ReconsentRequired, fresh_tokens, refresh_connection_tokens
from tests.connections.flow import link
from tests.connections.provider_server import ProviderServer
from tests.support import CreateUser


async def _linked(
    client: httpx.AsyncClient,
    create: CreateUser,
    provider_name: str,
    db_session: AsyncSession,
    expires_in: timedelta,
) -> tuple[uuid.UUID, dict[str, str]]:
    """A linked connection whose access token expires in ``expires_in``; its id and the user headers."""
    _, headers = await create()
    assert (await link(client, headers, provider_name)).status_code == 200
    result = await db_session.execute(
        update(DeviceConnection)
        .values(token_expires_at=utcnow() + expires_in)
        .where(DeviceConnection.provider == provider_name)
        .returning(DeviceConnection.id)
    )
    connection_id = result.scalar_one()
    await db_session.commit()
    return connection_id, headers


def _refreshes(provider: ProviderServer) -> int:
    return sum(b"grant_type=refresh_token" in r["body"] for r in provider.requests_to("/token"))


async def test_tokens_are_refreshed_shortly_before_expiry(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    connection_id, _ = await _linked(connect_client, connect_user, "oura", db_session, timedelta(hours=1))
    cipher = cipher_for(connect_settings.secret_key.get_secret_value())
    first_access = provider.state.grants[-1].access_token
    with sync_sessionmaker(connect_settings.sync_database_url)() as session:
        connection = session.get(DeviceConnection, connection_id)
        assert connection is not None
        # Valid for an hour: used as stored, the provider is not asked.
        assert fresh_tokens(connection, connect_settings, cipher).access_token == first_access
        assert _refreshes(provider) == 0
        # Two minutes left, inside the five-minute margin: refreshed first.
        connection.token_expires_at = utcnow() + timedelta(minutes=2)
        session.commit()
        tokens = fresh_tokens(connection, connect_settings, cipher)
        session.commit()
    grant = provider.state.grants[-1]
    assert _refreshes(provider) == 1
    assert tokens.access_token == grant.access_token != first_access
    db_session.expire_all()
    stored = await db_session.get(DeviceConnection, connection_id)
    assert stored is not None and stored.access_token_encrypted and stored.refresh_token_encrypted
    assert cipher.decrypt(stored.access_token_encrypted, context=ACCESS_TOKEN_CONTEXT) == grant.access_token
    # The provider rotated the refresh token: the new one is what we keep.
    assert (
        cipher.decrypt(stored.refresh_token_encrypted, context=REFRESH_TOKEN_CONTEXT) == grant.refresh_token
    )
    assert stored.token_expires_at is not None and stored.token_expires_at - utcnow() > timedelta(minutes=55)
    assert stored.status == ConnectionStatus.ACTIVE


async def test_a_refused_refresh_marks_the_connection_for_reconsent(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    connection_id, headers = await _linked(
        connect_client, connect_user, "whoop", db_session, timedelta(seconds=30)
    )
    # The user revoked us at WHOOP: the refresh token is dead (invalid_grant).
    provider.state.revoke(provider.state.grants[-1].refresh_token)
    cipher = cipher_for(connect_settings.secret_key.get_secret_value())
    with sync_sessionmaker(connect_settings.sync_database_url)() as session:
        connection = session.get(DeviceConnection, connection_id)
        assert connection is not None
        with pytest.raises(ReconsentRequired):
            fresh_tokens(connection, connect_settings, cipher)
        session.commit()
        # Once flagged, no further call reaches the provider.
        before = len(provider.requests_to("/token"))
        with pytest.raises(ReconsentRequired):
            fresh_tokens(connection, connect_settings, cipher)
        assert len(provider.requests_to("/token")) == before
    listed = (await connect_client.get("/v1/users/me/connections", headers=headers)).json()
    assert [(c["status"], c["status_reason"]) for c in listed] == [
        ("needs_reconsent", "refresh refused: invalid_grant")
    ]


async def test_a_provider_outage_during_refresh_changes_nothing(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    connection_id, _ = await _linked(
        connect_client, connect_user, "google", db_session, timedelta(seconds=30)
    )
    provider.state.down = True
    cipher = cipher_for(connect_settings.secret_key.get_secret_value())
    with sync_sessionmaker(connect_settings.sync_database_url)() as session:
        connection = session.get(DeviceConnection, connection_id)
        assert connection is not None
        with pytest.raises(ProviderUnavailable):
            fresh_tokens(connection, connect_settings, cipher)
        session.commit()
    db_session.expire_all()
    stored = await db_session.get(DeviceConnection, connection_id)
    assert stored is not None and stored.status == ConnectionStatus.ACTIVE


async def test_concurrent_refreshes_spend_a_rotating_refresh_token_once(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    connection_id, _ = await _linked(connect_client, connect_user, "oura", db_session, timedelta(seconds=30))
    cipher = cipher_for(connect_settings.secret_key.get_secret_value())
    factory = sync_sessionmaker(connect_settings.sync_database_url)
    barrier = threading.Barrier(2)

    def worker() -> str:
        with factory() as session:
            connection = session.get(DeviceConnection, connection_id)
            assert connection is not None
            barrier.wait()  # both have read the expiring token before either refreshes
            tokens = fresh_tokens(connection, connect_settings, cipher)
            session.commit()
            return tokens.access_token

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: worker(), range(2)))
    # The second waited for the first's row lock, then used its new tokens instead of a spent refresh token.
    assert _refreshes(provider) == 1
    assert results[0] == results[1] == provider.state.grants[-1].access_token
    db_session.expire_all()
    stored = await db_session.get(DeviceConnection, connection_id)
    assert stored is not None and stored.status == ConnectionStatus.ACTIVE


async def test_a_token_endpoint_401_marks_the_connection_for_reconsent(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    connection_id, _ = await _linked(connect_client, connect_user, "google-health", db_session, timedelta(0))
    # The provider no longer accepts our client for this grant (401 invalid_client).
    rejected = connect_settings.model_copy(update={"google_health_client_secret": SecretStr("rotated-away")})
    cipher = cipher_for(connect_settings.secret_key.get_secret_value())
    with sync_sessionmaker(connect_settings.sync_database_url)() as session:
        connection = session.get(DeviceConnection, connection_id)
        assert connection is not None
        with pytest.raises(ReconsentRequired, match="invalid_client"):
            refresh_connection_tokens(connection, rejected, cipher)
        session.commit()
    db_session.expire_all()
    stored = await db_session.get(DeviceConnection, connection_id)
    assert stored is not None and stored.status == ConnectionStatus.NEEDS_RECONSENT

"""Disconnect and user deletion give the grant back at the provider, without waiting and without loss."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.connections import revocations
from app.core.config import Settings
from app.core.db import sync_sessionmaker
from app.core.tasks import DRAIN_PENDING_REVOCATIONS, PURGE_USER_ADAPTERS, REVOKE_CONNECTION, celery_for
from app.models import DeviceConnection, PendingRevocation, User
from app.models.base import utcnow
from bridges.connections import TokenSet
from bridges.oauth import register_teardown, teardown_for
from tests.connections.conftest import provider_settings
from tests.connections.flow import link
from tests.connections.provider_server import ProviderServer, wait_until
from tests.connections.worker import connections_worker
from tests.support import CreateUser, admin_headers_for
from tests.webhooks.terra import queued


def _pending(settings: Settings) -> list[PendingRevocation]:
    with sync_sessionmaker(settings.sync_database_url)() as session:
        return list(session.scalars(select(PendingRevocation).order_by(PendingRevocation.provider)).all())


def _process_all(settings: Settings) -> list[bool]:
    results = []
    for row in _pending(settings):
        with sync_sessionmaker(settings.sync_database_url)() as session:
            results.append(revocations.process(session, settings, row.id, utcnow()))
            session.commit()
    return results


async def test_disconnect_revokes_at_the_provider_and_deletes_the_tokens(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
    tmp_path: Path,
) -> None:
    _, headers = await connect_user()
    await link(connect_client, headers, "oura")
    oura_grant = provider.state.grants[-1]
    await link(connect_client, headers, "google")
    google_grant = provider.state.grants[-1]

    response = await connect_client.delete("/v1/users/me/connections/oura", headers=headers)
    assert response.status_code == 204
    # The tokens left the connection table at once; the revocation waits for a worker.
    db_session.expire_all()
    remaining = (await db_session.scalars(select(DeviceConnection))).all()
    assert [c.provider for c in remaining] == ["google"]
    (pending,) = _pending(connect_settings)
    assert pending.provider == "oura" and oura_grant.access_token not in (
        pending.access_token_encrypted or ""
    )
    assert [m["task"] for m in queued(connect_settings, "default")] == [REVOKE_CONNECTION]
    assert provider.requests_to("/oura/revoke") == []
    assert (await connect_client.delete("/v1/users/me/connections/oura", headers=headers)).status_code == 404

    with connections_worker(connect_settings, tmp_path):
        assert wait_until(lambda: not _pending(connect_settings), timeout=60)
    assert provider.state.revoked_tokens == [oura_grant.access_token]
    assert not google_grant.revoked


async def test_user_deletion_revokes_even_when_the_provider_is_down_at_first(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
    tmp_path: Path,
) -> None:
    user_id, headers = await connect_user()
    provider.state.account = "10129"
    await link(connect_client, headers, "whoop")
    whoop_grant = provider.state.grants[-1]
    provider.state.account = "google-sub-1"
    await link(connect_client, headers, "google")
    google_grant = provider.state.grants[-1]
    provider.state.down = True

    response = await connect_client.delete(f"/v1/users/{user_id}", headers=headers)
    assert response.status_code == 204
    db_session.expire_all()
    assert await db_session.get(User, user_id) is None
    assert (await db_session.scalars(select(DeviceConnection))).all() == []
    # The duty to revoke outlives the user's rows.
    assert [row.provider for row in _pending(connect_settings)] == ["google", "whoop"]

    with connections_worker(connect_settings, tmp_path):
        assert wait_until(lambda: all(row.attempts >= 1 for row in _pending(connect_settings)), timeout=60)
        rows = _pending(connect_settings)
        assert len(rows) == 2 and all("ProviderUnavailable" in (row.last_error or "") for row in rows)
        assert not whoop_grant.revoked and not google_grant.revoked
        provider.state.down = False
        # What beat does every minute: retry whatever is due.
        celery_for(connect_settings).send_task(DRAIN_PENDING_REVOCATIONS)
        assert wait_until(lambda: not _pending(connect_settings), timeout=60)
    assert whoop_grant.revoked and google_grant.revoked
    # Google's grant is given back through its refresh token (RFC 7009), WHOOP's with its bearer access token.
    assert google_grant.refresh_token in provider.state.revoked_tokens
    assert whoop_grant.access_token in provider.state.revoked_tokens


async def test_an_expired_access_token_is_refreshed_before_a_bearer_revocation(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    _, headers = await connect_user()
    await link(connect_client, headers, "whoop")
    grant = provider.state.grants[-1]
    await db_session.execute(
        update(DeviceConnection).values(token_expires_at=utcnow() - timedelta(minutes=1))
    )
    await db_session.commit()
    assert (await connect_client.delete("/v1/users/me/connections/whoop", headers=headers)).status_code == 204
    assert _process_all(connect_settings) == [True]
    # A refresh first (WHOOP refuses an expired bearer), then the DELETE with the new access token.
    assert [r["method"] + " " + r["path"] for r in provider.state.requests[-2:]] == [
        "POST /token",
        "DELETE /whoop/access",
    ]
    assert grant.revoked and provider.state.revoked_tokens == [grant.access_token]
    assert _pending(connect_settings) == []


class _RecordingTeardown:
    """A provider teardown that needs the connection's rows (collect) and the provider (run)."""

    def __init__(self, fail_runs: int = 0) -> None:
        self.collected: list[str] = []
        self.runs: list[tuple[dict[str, Any], str | None]] = []
        self.fail_runs = fail_runs

    def collect(self, session: Session, connection: DeviceConnection) -> dict[str, Any]:
        # A synchronous query in the deleting transaction: the row is still there.
        assert session.get(DeviceConnection, connection.id) is connection
        self.collected.append(connection.external_user_id)
        return {"channels": [{"id": f"ch-{connection.external_user_id}", "resourceId": "r-1"}]}

    def run(self, payload: dict[str, Any], tokens: TokenSet | None, settings: Settings) -> None:
        self.runs.append((payload, None if tokens is None else tokens.access_token))
        if len(self.runs) <= self.fail_runs:
            raise RuntimeError("channel stop failed")


@pytest.fixture
def oura_teardown() -> Iterator[_RecordingTeardown]:
    previous = teardown_for("oura")
    teardown = _RecordingTeardown(fail_runs=1)
    register_teardown("oura", teardown)
    yield teardown
    if previous is not None:
        register_teardown("oura", previous)
    else:
        from bridges.oauth import teardown as registry

        registry._TEARDOWNS.pop("oura", None)


async def test_teardown_collects_before_delete_and_runs_once_with_the_tokens(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    oura_teardown: _RecordingTeardown,
) -> None:
    _, headers = await connect_user()
    provider.state.account = "oura-42"
    await link(connect_client, headers, "oura")
    grant = provider.state.grants[-1]
    assert (await connect_client.delete("/v1/users/me/connections/oura", headers=headers)).status_code == 204
    assert oura_teardown.collected == ["oura-42"]
    (row,) = _pending(connect_settings)
    assert row.teardown_payload == {"channels": [{"id": "ch-oura-42", "resourceId": "r-1"}]}

    # First attempt: the teardown fails → nothing revoked yet, retry scheduled with backoff.
    assert _process_all(connect_settings) == [False]
    (row,) = _pending(connect_settings)
    assert row.attempts == 1 and row.teardown_done_at is None and row.next_attempt_at > utcnow()
    assert not grant.revoked
    # Second: teardown done, then the revocation; the row is gone.
    assert _process_all(connect_settings) == [True]
    assert [access for _, access in oura_teardown.runs] == [grant.access_token, grant.access_token]
    assert grant.revoked and _pending(connect_settings) == []


async def test_a_revocation_that_keeps_failing_is_kept_for_operators(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    settings: Settings,
    connect_settings: Settings,
    provider: ProviderServer,
) -> None:
    _, headers = await connect_user()
    await link(connect_client, headers, "google")
    assert (
        await connect_client.delete("/v1/users/me/connections/google", headers=headers)
    ).status_code == 204
    provider.state.down = True
    limited = provider_settings(settings, provider, revocation_max_attempts=2)
    assert _process_all(limited) == [False]
    assert _process_all(limited) == [False]
    (row,) = _pending(limited)
    assert row.attempts == 2 and row.gave_up_at is not None
    # Given up: the drain no longer picks it, but the row (and the duty) stays visible.
    with sync_sessionmaker(limited.sync_database_url)() as session:
        assert revocations.due(session, utcnow() + timedelta(days=1)) == []


async def test_removing_a_terra_connection_deauthenticates_the_terra_user(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    user_id, headers = await connect_user()
    # As Terra's signed ``auth`` webhook creates it: no tokens, the Terra user id.
    db_session.add(DeviceConnection(user_id=user_id, provider="terra", external_user_id="terra-user-9"))
    await db_session.commit()
    assert (await connect_client.delete("/v1/users/me/connections/terra", headers=headers)).status_code == 204
    assert _process_all(connect_settings) == [True]
    assert provider.state.terra_deauthed == ["terra-user-9"]


async def test_deleting_a_user_without_connections_queues_nothing(
    connect_client: httpx.AsyncClient, connect_user: CreateUser, connect_settings: Settings
) -> None:
    user_id, _ = await connect_user()
    response = await connect_client.delete(
        f"/v1/users/{user_id}", headers=admin_headers_for(connect_settings)
    )
    assert response.status_code == 204
    assert _pending(connect_settings) == []
    # No revocation to run; the only job is the purge of the user's adapter files (none here, harmless).
    assert [m["task"] for m in queued(connect_settings, "default")] == [PURGE_USER_ADAPTERS]

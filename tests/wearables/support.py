"""Linking a provider account (tokens encrypted through bridges.connections) and storing a signed delivery,
then processing it the way the ingest task does, against the test database."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from app.core.config import Settings
from app.core.db import task_session
from app.models import DeviceConnection, SignalReading, WebhookEvent
from app.webhooks import service
from bridges.connections import TokenSet, cipher_for, read_tokens, write_tokens

# The ``new_user`` fixture: a user created through the API → its id and bearer headers.
NewUser = Callable[[], Awaitable[tuple[uuid.UUID, dict[str, str]]]]


def link(
    settings: Settings,
    user_id: uuid.UUID,
    provider: str,
    external_user_id: str,
    *,
    access: str = "access-1",
    expires_in: timedelta = timedelta(hours=1),
) -> uuid.UUID:
    cipher = cipher_for(settings.secret_key.get_secret_value())
    with task_session(settings.sync_database_url) as session:
        connection = DeviceConnection(user_id=user_id, provider=provider, external_user_id=external_user_id)
        tokens = TokenSet(access, "refresh-1", datetime.now(UTC) + expires_in, "read")
        write_tokens(connection, tokens, cipher)
        session.add(connection)
        session.flush()
        return connection.id


def connection(settings: Settings, connection_id: uuid.UUID) -> tuple[DeviceConnection, TokenSet | None]:
    cipher = cipher_for(settings.secret_key.get_secret_value())
    with task_session(settings.sync_database_url) as session:
        row = session.get(DeviceConnection, connection_id)
        assert row is not None
        return row, read_tokens(row, cipher)


async def deliver(
    client: httpx.AsyncClient, settings: Settings, path: str, body: bytes, headers: dict[str, str]
) -> uuid.UUID:
    """POST a delivery (must be new: 202) and return the stored event's id."""
    before = set(event_ids(settings))
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 202, response.text
    [new] = [event_id for event_id in event_ids(settings) if event_id not in before]
    return new


def event_ids(settings: Settings) -> list[uuid.UUID]:
    with task_session(settings.sync_database_url) as session:
        rows = session.execute(select(WebhookEvent.id).order_by(WebhookEvent.received_at)).scalars().all()
        return list(rows)


def process(settings: Settings, event_id: uuid.UUID) -> service.Processed:
    """What ``rhythm.ingest.process_webhook_event`` does in one attempt, failures counted on the row."""
    try:
        with task_session(settings.sync_database_url) as session:
            return service.process(session, settings, event_id, datetime.now(UTC))
    except Exception as exc:
        with task_session(settings.sync_database_url) as session:
            service.record_failure(session, event_id, exc)
        raise


def event(settings: Settings, event_id: uuid.UUID) -> WebhookEvent:
    with task_session(settings.sync_database_url) as session:
        row = session.get(WebhookEvent, event_id)
        assert row is not None
        session.expunge(row)
        return row


def readings(settings: Settings, user_id: uuid.UUID | None = None) -> list[tuple[str, str, float, datetime]]:
    with task_session(settings.sync_database_url) as session:
        statement = select(SignalReading).order_by(SignalReading.kind, SignalReading.observed_at)
        if user_id is not None:
            statement = statement.where(SignalReading.user_id == user_id)
        return [(r.source, r.kind, round(r.value, 3), r.observed_at) for r in session.scalars(statement)]


def kinds(rows: list[tuple[str, str, float, datetime]]) -> dict[str, float]:
    return {kind: value for _, kind, value, _ in rows}

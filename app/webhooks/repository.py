"""All SQL of the inbox: the API's insert-once (async) and the worker's processing (sync)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models import DeviceConnection, SignalReading, User, WebhookEvent
from app.webhooks.schemas import WebhookStatus


def _insert_for(session: Session | AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def status_expression() -> ColumnElement[str]:
    """The derived status as SQL, for filters and listings."""
    return case(
        (WebhookEvent.handled_at.is_not(None), literal(WebhookStatus.HANDLED.value)),
        (WebhookEvent.error.is_not(None), literal(WebhookStatus.FAILED.value)),
        else_=literal(WebhookStatus.PENDING.value),
    )


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_once(self, row: dict[str, Any]) -> uuid.UUID | None:
        """Insert the event unless ``(source, external_id)`` exists; its id if it was new, else ``None``."""
        statement = (
            _insert_for(self.session)(WebhookEvent)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["source", "external_id"])
            .returning(WebhookEvent.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()


class OpsRepository:
    """The operators' reads of the inbox (async, API side)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_events(
        self,
        *,
        status: WebhookStatus | None,
        source: str | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> Sequence[tuple[WebhookEvent, str]]:
        """Events newest first, each with its derived status; ``before`` is the keyset position
        ``(received_at, id)`` of the previous page's last event (the id breaks ties in a burst)."""
        status_column = status_expression()
        statement = select(WebhookEvent, status_column)
        if status is not None:
            statement = statement.where(status_column == status.value)
        if source is not None:
            statement = statement.where(WebhookEvent.source == source)
        if before is not None:
            statement = statement.where(tuple_(WebhookEvent.received_at, WebhookEvent.id) < tuple_(*before))
        statement = statement.order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc()).limit(limit)
        rows = (await self.session.execute(statement)).all()
        return [(row[0], row[1]) for row in rows]

    async def get_event(self, event_id: uuid.UUID) -> WebhookEvent | None:
        return await self.session.get(WebhookEvent, event_id)


class ProcessingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_event(self, event_id: uuid.UUID) -> WebhookEvent | None:
        # Row lock: a redelivered message processed concurrently waits, then sees handled_at and stops.
        statement = select(WebhookEvent).where(WebhookEvent.id == event_id).with_for_update()
        return self.session.execute(statement).scalar_one_or_none()

    def record_failure(self, event_id: uuid.UUID, error: str) -> int | None:
        """Count a failed attempt and keep its error; returns the attempts so far (None: no such event)."""
        statement = (
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id, WebhookEvent.handled_at.is_(None))
            .values(attempts=WebhookEvent.attempts + 1, error=error)
            .returning(WebhookEvent.attempts)
        )
        return self.session.execute(statement).scalar_one_or_none()

    def never_attempted_before(self, cutoff: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Unhandled events received before ``cutoff`` with no attempt counted, leaving out those a worker
        is processing right now (its first attempt holds the row lock from :meth:`lock_event` until it
        commits)."""
        statement = (
            select(WebhookEvent.id)
            .where(
                WebhookEvent.handled_at.is_(None),
                WebhookEvent.attempts == 0,
                WebhookEvent.received_at < cutoff,
            )
            .order_by(WebhookEvent.received_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self.session.execute(statement).scalars().all()

    def user_exists(self, user_id: uuid.UUID) -> bool:
        return self.session.execute(select(User.id).where(User.id == user_id)).first() is not None

    def connection(self, provider: str, external_user_id: str) -> DeviceConnection | None:
        statement = select(DeviceConnection).where(
            DeviceConnection.provider == provider, DeviceConnection.external_user_id == external_user_id
        )
        return self.session.execute(statement).scalar_one_or_none()

    def add_connection(self, connection: DeviceConnection) -> None:
        self.session.add(connection)
        self.session.flush()

    def upsert_readings(self, rows: list[dict[str, Any]]) -> int:
        """Insert readings keyed by ``(user, source, kind, observed_at)``; a changed value overwrites, an
        unchanged one writes nothing. Returns how many rows were written."""
        if not rows:
            return 0
        insert = _insert_for(self.session)(SignalReading).values(rows)
        statement = insert.on_conflict_do_update(
            index_elements=["user_id", "source", "kind", "observed_at"],
            set_={
                "value": insert.excluded.value,
                "unit": insert.excluded.unit,
                "webhook_event_id": insert.excluded.webhook_event_id,
            },
            where=or_(
                SignalReading.value != insert.excluded.value,
                func.coalesce(SignalReading.unit, "") != func.coalesce(insert.excluded.unit, ""),
            ),
        ).returning(SignalReading.id)
        return len(self.session.execute(statement).all())

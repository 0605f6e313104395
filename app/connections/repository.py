"""All SQL of the connections API. Reads of connections are filtered by the calling user."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import DeviceConnection, OAuthState, PendingRevocation


class ConnectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_for_user(self, user_id: uuid.UUID) -> Sequence[DeviceConnection]:
        statement = (
            select(DeviceConnection)
            .where(DeviceConnection.user_id == user_id)
            .order_by(DeviceConnection.provider, DeviceConnection.created_at)
        )
        return (await self.session.scalars(statement)).all()

    async def for_user_and_provider(
        self, user_id: uuid.UUID, provider: str, *, lock: bool = False
    ) -> Sequence[DeviceConnection]:
        statement = select(DeviceConnection).where(
            DeviceConnection.user_id == user_id, DeviceConnection.provider == provider
        )
        if lock:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).all()

    async def for_user_locked(self, user_id: uuid.UUID) -> Sequence[DeviceConnection]:
        statement = select(DeviceConnection).where(DeviceConnection.user_id == user_id).with_for_update()
        return (await self.session.scalars(statement)).all()

    async def by_account_locked(self, provider: str, external_user_id: str) -> DeviceConnection | None:
        """The connection of a provider account, whoever owns it (to refuse linking it twice). Row-locked."""
        statement = (
            select(DeviceConnection)
            .where(
                DeviceConnection.provider == provider, DeviceConnection.external_user_id == external_user_id
            )
            .with_for_update()
        )
        return (await self.session.scalars(statement)).first()

    async def add(self, connection: DeviceConnection) -> DeviceConnection:
        self.session.add(connection)
        await self.session.flush()
        return connection

    async def delete(self, connection: DeviceConnection) -> None:
        await self.session.delete(connection)
        await self.session.flush()


class StateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, state: OAuthState) -> None:
        self.session.add(state)
        await self.session.flush()

    async def consume(self, provider: str, state_digest: str) -> OAuthState | None:
        """Delete and return the pending authorization: whoever deletes it first owns it (single use)."""
        statement = (
            delete(OAuthState)
            .where(OAuthState.provider == provider, OAuthState.state_digest == state_digest)
            .returning(OAuthState)
        )
        return (await self.session.scalars(statement)).first()

    async def purge_expired(self, now: datetime) -> None:
        await self.session.execute(delete(OAuthState).where(OAuthState.expires_at < now))


class RevocationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, revocation: PendingRevocation) -> PendingRevocation:
        self.session.add(revocation)
        await self.session.flush()
        return revocation

"""All SQL about users and their tokens. Reads of personal data are always filtered by ``user_id``."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from sqlalchemy import Table, delete, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import USER_OWNED_MODELS, ApiToken, User
from app.models.base import Base


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_for_update(self, user_id: uuid.UUID) -> User | None:
        """The user, row-locked until the transaction ends: serialises token rotations and deletion."""
        statement = (
            select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).first()

    async def set_timezone(self, user: User, timezone: str) -> User:
        user.timezone = timezone
        await self.session.flush()
        return user

    async def delete(self, user_id: uuid.UUID) -> bool:
        """Delete the user; every user-owned table follows by ON DELETE CASCADE."""
        result = await self.session.execute(delete(User).where(User.id == user_id).returning(User.id))
        return result.first() is not None

    async def list_with_active_token_counts(self) -> list[tuple[User, int]]:
        """Every user (oldest first) with the number of its unrevoked tokens; for operators only."""
        active = func.count(ApiToken.id).filter(ApiToken.revoked_at.is_(None))
        statement = (
            select(User, active)
            .outerjoin(ApiToken, ApiToken.user_id == User.id)
            .group_by(User.id)
            .order_by(User.created_at, User.id)
        )
        return [(user, int(count)) for user, count in (await self.session.execute(statement)).all()]

    async def export_rows(
        self, user_id: uuid.UUID, exclude: dict[str, set[str]]
    ) -> dict[str, list[dict[str, Any]]]:
        """Every row of every user-owned table, as column → value, minus the excluded (secret) columns."""
        exported: dict[str, list[dict[str, Any]]] = {}
        for model in USER_OWNED_MODELS:
            table = model.__table__
            assert isinstance(table, Table)
            hidden = exclude.get(table.name, set())
            statement = select(model).where(table.c.user_id == user_id).order_by(table.c.id)
            rows = (await self.session.scalars(statement)).all()
            exported[table.name] = [_row_dict(row, hidden) for row in rows]
        return exported


def _row_dict(row: Base, hidden: set[str]) -> dict[str, Any]:
    mapper = inspect(type(row))
    return {
        column.key: _exportable(getattr(row, column.key))
        for column in mapper.column_attrs
        if column.key not in hidden
    }


def _exportable(value: Any) -> Any:
    # Raw webhook bodies are bytes and need not be UTF-8; base64 keeps the export lossless JSON.
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value

"""All SQL about API tokens. It lives with authentication, which looks tokens up on every request, so that
``app.core`` never reaches up into a domain package; ``app.users`` issues and revokes tokens through it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiToken, User

# Built once: every authenticated request runs it, and composing the expression anew each time was about a
# fifth of authentication's CPU (the compiled SQL is cached by SQLAlchemy either way).
_ACTIVE_BY_HASH = (
    select(ApiToken, User)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)


class TokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        await self.session.flush()
        return token

    async def get_active_by_hash(self, token_hash: str) -> tuple[ApiToken, User] | None:
        row = (await self.session.execute(_ACTIVE_BY_HASH, {"token_hash": token_hash})).first()
        return None if row is None else (row[0], row[1])

    async def revoke_all(self, user_id: uuid.UUID, at: datetime) -> int:
        """Revoke every active token of the user; returns how many were revoked."""
        statement = (
            update(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=at)
            .returning(ApiToken.id)
        )
        return len((await self.session.execute(statement)).all())

    async def mark_used(self, token_id: uuid.UUID, at: datetime) -> None:
        """Stamp ``last_used_at`` (a Core UPDATE: a token deleted meanwhile is simply not matched)."""
        await self.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=at))

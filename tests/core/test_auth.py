"""Bearer tokens: the admin token, user tokens, revocation."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import hash_token, new_token
from app.models import ApiToken
from tests.support import CreateUser


def test_tokens_are_random_and_hash_is_not_the_token() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) >= 40
    digest = hash_token(token)
    assert digest != token and token not in digest and len(digest) == 64
    assert hash_token(token) == digest


async def test_wrong_token_is_401_right_token_is_200(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _, headers = await create_user()
    assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
    tampered = {
        "Authorization": headers["Authorization"][:-1] + ("A" if headers["Authorization"][-1] != "A" else "B")
    }
    assert (await client.get("/v1/users/me", headers=tampered)).status_code == 401


async def test_revoked_token_is_401(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    token = headers["Authorization"].removeprefix("Bearer ")
    await db_session.execute(
        update(ApiToken).where(ApiToken.token_hash == hash_token(token)).values(revoked_at=datetime.now(UTC))
    )
    await db_session.commit()
    response = await client.get("/v1/users/me", headers=headers)
    assert response.status_code == 401


async def test_last_used_is_recorded(
    client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await create_user()
    await client.get("/v1/users/me", headers=headers)
    token = headers["Authorization"].removeprefix("Bearer ")
    last_used = await db_session.scalar(
        select(ApiToken.last_used_at).where(ApiToken.token_hash == hash_token(token))
    )
    assert last_used is not None
    assert (datetime.now(UTC) - last_used).total_seconds() < 60

"""Deletion removes every row of a user (and nothing of anyone else); export returns every table."""

from __future__ import annotations

import base64
import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import TokenCipher
from app.models import USER_OWNED_MODELS, Base, User
from tests.factories import seed_user_rows
from tests.support import CreateUser


def _user_tables() -> list[Table]:
    return [table for table in Base.metadata.sorted_tables if "user_id" in table.c]


async def _counts(session: AsyncSession, user_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    for table in _user_tables():
        statement = select(func.count()).select_from(table).where(table.c.user_id == user_id)
        counts[table.name] = (await session.execute(statement)).scalar_one()
    users = select(func.count()).select_from(User).where(User.id == user_id)
    counts["users"] = (await session.execute(users)).scalar_one()
    return counts


def test_every_user_owned_table_is_known_to_export_and_delete() -> None:
    # A new table with user_id must be added to USER_OWNED_MODELS, or export would silently miss it.
    assert {table.name for table in _user_tables()} == {model.__tablename__ for model in USER_OWNED_MODELS}


async def test_delete_removes_every_row_of_the_user_only(
    app: FastAPI, client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    cipher = TokenCipher(app.state.settings.secret_key.get_secret_value())
    doomed_id, doomed_headers = await create_user()
    kept_id, _ = await create_user()
    await seed_user_rows(db_session, doomed_id, cipher)
    await seed_user_rows(db_session, kept_id, cipher)
    await db_session.commit()

    before_doomed = await _counts(db_session, doomed_id)
    before_kept = await _counts(db_session, kept_id)
    assert all(count >= 1 for count in before_doomed.values()), before_doomed

    response = await client.delete(f"/v1/users/{doomed_id}", headers=doomed_headers)
    assert response.status_code == 204

    db_session.expire_all()
    assert await _counts(db_session, doomed_id) == dict.fromkeys(before_doomed, 0)
    assert await _counts(db_session, kept_id) == before_kept


async def test_export_contains_every_table_and_no_secrets(
    app: FastAPI, client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    cipher = TokenCipher(app.state.settings.secret_key.get_secret_value())
    user_id, headers = await create_user()
    other_id, _ = await create_user()
    await seed_user_rows(db_session, user_id, cipher)
    await seed_user_rows(db_session, other_id, cipher)
    await db_session.commit()

    response = await client.get("/v1/users/me/export", headers=headers)
    assert response.status_code == 200
    export = response.json()
    assert set(export["tables"]) == {model.__tablename__ for model in USER_OWNED_MODELS}
    for name, rows in export["tables"].items():
        assert len(rows) == 1, name
        assert rows[0]["user_id"] == str(user_id)
    assert export["tables"]["recommendations"][0]["action"] == "DEEP_WORK"
    assert "token_hash" not in export["tables"]["api_tokens"][0]
    connection = export["tables"]["device_connections"][0]
    assert "access_token_encrypted" not in connection and "refresh_token_encrypted" not in connection
    assert "access-" not in response.text and "refresh-" not in response.text
    assert "token_hash" not in export["tables"]["google_channels"][0]
    assert "sync_token" not in export["tables"]["google_calendars"][0] and "sync-" not in response.text
    assert "verifier-" not in response.text  # PKCE verifiers of pending authorizations stay server-side
    # The raw webhook body comes back byte for byte (base64, since it need not be UTF-8).
    event = export["tables"]["webhook_events"][0]
    assert base64.b64decode(event["raw_body"]) == b'{"type": "sleep", "hours": 7.5}'
    assert event["headers"] == {"content-type": "application/json"}

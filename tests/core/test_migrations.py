"""Migrations alone make tables: up, down and up again on Postgres and SQLite, matching the models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, Uuid, inspect, select
from sqlalchemy.exc import IntegrityError

from app.core import migrate
from app.core.config import Settings
from app.core.db import create_sync_engine
from app.models import Base
from tests.support import temporary_postgres_database

EXPECTED_TABLES = {table.name for table in Base.metadata.sorted_tables}


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A sync URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    with temporary_postgres_database("rhythm_migrations") as url:
        yield Settings(database_url=url).sync_database_url


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_history_is_linear() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    heads = script.get_heads()
    assert len(heads) == 1
    assert len(script.get_bases()) == 1


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    engine = create_sync_engine(empty_database)
    try:
        assert _tables(engine) == set()
        migrate.upgrade(empty_database)
        assert _tables(engine) == EXPECTED_TABLES
        migrate.downgrade(empty_database, "base")
        assert _tables(engine) == set()
        migrate.upgrade(empty_database)
        assert _tables(engine) == EXPECTED_TABLES
        # The migrated schema is what the models describe: no drift between 0001 (and later) and app.models.
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_every_step_is_reversible(empty_database: str) -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config(empty_database))
    revisions = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    engine = create_sync_engine(empty_database)
    try:
        for revision in revisions:
            migrate.upgrade(empty_database, revision)
            before = _tables(engine)
            migrate.downgrade(empty_database, "-1")
            migrate.upgrade(empty_database, revision)
            assert _tables(engine) == before
    finally:
        engine.dispose()


def test_0010_gives_the_admin_a_key_scope_and_its_downgrade_deletes_the_admins_keys(
    empty_database: str,
) -> None:
    """0010: ``user_id`` NULL is the admin's scope, unique per key there (a partial index, on both databases);
    going back to 0009 (``user_id`` NOT NULL again) deletes the admin's keys and keeps every user's."""
    migrate.upgrade(empty_database, "0010")
    engine = create_sync_engine(empty_database)
    user_id = uuid.uuid4()

    def key(name: str, owner: uuid.UUID | None) -> dict[str, object]:
        return {
            "id": uuid.uuid4(),
            "user_id": owner,
            "key": name,
            "method": "POST",
            "path": "/v1/users",
            "request_hash": "0" * 64,
            "status": "completed",
            "expires_at": datetime.now(UTC) + timedelta(hours=1),
        }

    # The columns this test writes, typed as at 0010 (SQLite's reflection would not know them as UUIDs).
    metadata = MetaData()
    users = Table("users", metadata, Column("id", Uuid), Column("timezone", String))
    keys = Table(
        "idempotency_keys",
        metadata,
        *(Column(name, Uuid) for name in ("id", "user_id")),
        *(Column(name, String) for name in ("key", "method", "path", "request_hash", "status")),
        Column("expires_at", DateTime(timezone=True)),
    )
    try:
        with engine.begin() as connection:
            connection.execute(users.insert().values(id=user_id, timezone="UTC"))
            # One key name in both scopes: they do not collide.
            connection.execute(
                keys.insert(), [key("same", user_id), key("same", None), key("admin-only", None)]
            )
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(keys.insert().values(**key("same", None)))
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(keys.insert().values(**key("same", user_id)))

        migrate.downgrade(empty_database, "0009")
        with engine.connect() as connection:
            left = connection.execute(select(keys.c.key, keys.c.user_id)).all()
        assert left == [("same", user_id)]
        user_column = next(
            c for c in inspect(engine).get_columns("idempotency_keys") if c["name"] == "user_id"
        )
        assert user_column["nullable"] is False

        migrate.upgrade(empty_database)
        with engine.begin() as connection:
            connection.execute(keys.insert().values(**key("same", None)))
    finally:
        engine.dispose()

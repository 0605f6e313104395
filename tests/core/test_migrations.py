"""Migrations alone make tables: up, down and up again on Postgres and SQLite, matching the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

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

"""Run Alembic from code (CLI, tests): the migrations ship inside the package, alembic.ini is optional.

Alembic is imported inside the functions: it costs ~0.9 s at import, and only the ``db`` commands, the tests
and the API benchmark migrate. This module also names the one sentence a missing schema is reported with.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine

MISSING_SCHEMA = "The database has no Rhythm tables yet: run `rhythm db upgrade` first."


def is_missing_schema(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says a table is missing: the database was never migrated."""
    seen: BaseException | None = exc
    while seen is not None:
        # What SQLite ("no such table"), psycopg and asyncpg ("relation ... does not exist") say.
        text = f"{type(seen).__name__} {seen}".lower()
        if "no such table" in text or "undefinedtable" in text:
            return True
        if "relation" in text and "does not exist" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def alembic_config(sync_database_url: str) -> Config:
    from alembic.config import Config

    import migrations

    config = Config()
    # __path__, not __file__: an editable install may expose the folder as a namespace package.
    config.set_main_option("script_location", str(Path(next(iter(migrations.__path__)))))
    config.attributes["database_url"] = sync_database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade(sync_database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(sync_database_url), revision)


def downgrade(sync_database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(sync_database_url), revision)


def current(sync_database_url: str) -> None:
    from alembic import command

    command.current(alembic_config(sync_database_url))


class SchemaMissingError(RuntimeError):
    """The database answers but was never migrated."""


async def require_schema(engine: AsyncEngine, limit_s: float) -> None:
    """Fail start-up with :data:`MISSING_SCHEMA` on a reachable database without our tables.

    An unreachable database is not an error here: the service starts and ``/readyz`` reports it, so that a
    database restarting under a running deployment does not turn into a crash loop.
    """
    # Imported here: structlog (with rich) is a third of `rhythm --help`'s imports, and the CLI imports this
    # module for MISSING_SCHEMA alone.
    import structlog
    from sqlalchemy import inspect

    log = structlog.get_logger(__name__)
    try:
        async with asyncio.timeout(limit_s), engine.connect() as connection:
            migrated = await connection.run_sync(lambda sync: inspect(sync).has_table("users"))
    except Exception as exc:
        log.warning("schema_check_skipped", error=repr(exc))
        return
    if not migrated:
        log.error("database_not_migrated", message=MISSING_SCHEMA)
        raise SchemaMissingError(MISSING_SCHEMA)

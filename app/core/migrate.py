"""Run Alembic from code (CLI, tests): the migrations ship inside the package, alembic.ini is optional."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations


def alembic_config(sync_database_url: str) -> Config:
    config = Config()
    # __path__, not __file__: an editable install may expose the folder as a namespace package.
    config.set_main_option("script_location", str(Path(next(iter(migrations.__path__)))))
    config.attributes["database_url"] = sync_database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade(sync_database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(sync_database_url), revision)


def downgrade(sync_database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(sync_database_url), revision)


def current(sync_database_url: str) -> None:
    command.current(alembic_config(sync_database_url))

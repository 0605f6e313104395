"""Settings: URL normalisation, typed durations, and refusal of default secrets in production."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import DEFAULT_SECRET_KEY, Environment, Settings

STRONG = "s" * 40


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The shell running the tests may export RHYTHM_* (e.g. `make run`); these tests must see only their own.
    import os

    for name in list(os.environ):
        if name.startswith("RHYTHM_"):
            monkeypatch.delenv(name)


def test_defaults_are_embedded_and_local() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///var/rhythm.db"
    assert settings.sync_database_url == "sqlite:///var/rhythm.db"
    assert settings.broker_url.startswith("sqla+sqlite:///var/")
    assert settings.port == 8000
    assert settings.policy_backend == "local"
    assert settings.history_days == 30 and settings.adapter_history_days == 7


def test_one_data_dir_moves_every_embedded_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RHYTHM_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.sync_database_url == f"sqlite:///{tmp_path}/rhythm.db"
    assert settings.broker_url == f"sqla+sqlite:///{tmp_path}/broker.sqlite"
    assert settings.adapter_dir == tmp_path / "adapters"
    assert settings.admin_token_file == tmp_path / "admin_token"
    # An explicit URL still wins over the data directory.
    monkeypatch.setenv("RHYTHM_BROKER_URL", "redis://127.0.0.1:6379/0")
    assert Settings().broker_url == "redis://127.0.0.1:6379/0"
    assert Settings(database_url="sqlite:///elsewhere.db").sync_database_url == "sqlite:///elsewhere.db"


def test_postgres_url_gets_one_driver_per_side(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RHYTHM_DATABASE_URL", "postgresql://u:p@db:5432/rhythm")
    settings = Settings()
    assert settings.async_database_url == "postgresql+asyncpg://u:p@db:5432/rhythm"
    assert settings.sync_database_url == "postgresql+psycopg://u:p@db:5432/rhythm"


def test_unsupported_database_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(database_url="mysql://x@y/z")


def test_durations_are_timedeltas_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RHYTHM_FEEDBACK_WINDOW", "PT2H")
    assert Settings().feedback_window == timedelta(hours=2)
    monkeypatch.setenv("RHYTHM_FEEDBACK_WINDOW", "90")
    assert Settings().feedback_window == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("secret_key", "admin_token"),
    [
        (DEFAULT_SECRET_KEY, STRONG),
        ("", STRONG),
        ("short", STRONG),
        (STRONG, ""),
        (STRONG, "admin"),
    ],
)
def test_production_refuses_default_or_weak_secrets(
    monkeypatch: pytest.MonkeyPatch, secret_key: str, admin_token: str
) -> None:
    monkeypatch.setenv("RHYTHM_ENV", "production")
    monkeypatch.setenv("RHYTHM_SECRET_KEY", secret_key)
    monkeypatch.setenv("RHYTHM_ADMIN_TOKEN", admin_token)
    with pytest.raises(ValidationError, match="RHYTHM_"):
        Settings()


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RHYTHM_ENV", "production")
    monkeypatch.setenv("RHYTHM_SECRET_KEY", STRONG)
    monkeypatch.setenv("RHYTHM_ADMIN_TOKEN", "a" * 40)
    settings = Settings()
    assert settings.json_logs is True
    assert DEFAULT_SECRET_KEY not in repr(settings)


def test_development_allows_defaults() -> None:
    assert Settings(env=Environment.DEVELOPMENT).secret_key.get_secret_value() == DEFAULT_SECRET_KEY

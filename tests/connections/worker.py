"""A real Celery worker configured like the test app (database, broker prefix, secret key, provider URLs)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr

from app.core.config import Settings
from tests.support import celery_process

_PREFIXES = ("whoop_", "oura_", "google_health_", "google_", "terra_", "revocation_", "oauth_")


def worker_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``RHYTHM_*`` environment a worker process reads."""
    env = {
        **os.environ,
        "RHYTHM_ENV": "test",
        "RHYTHM_DATABASE_URL": settings.database_url,
        "RHYTHM_BROKER_URL": settings.broker_url,
        "RHYTHM_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "RHYTHM_SECRET_KEY": settings.secret_key.get_secret_value(),
        "RHYTHM_PUBLIC_BASE_URL": settings.public_base_url,
        "RHYTHM_LOG_LEVEL": "INFO",
    }
    for name, value in settings.model_dump().items():
        if not name.startswith(_PREFIXES):
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, timedelta):
            value = value.total_seconds()
        env[f"RHYTHM_{name.upper()}"] = str(value)
    return env


@contextmanager
def connections_worker(settings: Settings, log_dir: Path) -> Iterator[None]:
    args = ["worker", "--pool", "solo", "-Q", "ingest,calendar,finetune,default"]
    args += ["-n", f"connect-{secrets.token_hex(4)}@%h", "--without-mingle", "--without-gossip"]
    args += ["--without-heartbeat", "-l", "INFO"]
    with celery_process(args, worker_env(settings), log_dir / "worker.log"):
        yield

"""Terra deliveries in the documented format, signed as Terra signs them, and a worker that processes them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr

from app.core.config import Settings
from bridges.terra.provider import sign
from tests.support import celery_process

URL = "/v1/webhooks/terra"


def terra_settings(settings: Settings, **overrides: object) -> Settings:
    """``settings`` with a Terra secret and a broker key prefix of its own (no other session's messages)."""
    values: dict[str, object] = {
        "terra_webhook_secret": SecretStr("terra-test-" + secrets.token_hex(16)),
        "broker_key_prefix": f"rhythm-test-{secrets.token_hex(6)}:",
        "webhook_retry_backoff": timedelta(seconds=0.2),
        "webhook_retry_backoff_max": timedelta(seconds=1),
    }
    values.update(overrides)
    return settings.model_copy(update=values)


def signed_headers(
    settings: Settings, body: bytes, *, at: float | None = None, trace: str | None = None
) -> dict[str, str]:
    timestamp = int(time.time() if at is None else at)
    secret = settings.terra_webhook_secret.get_secret_value()
    headers = {
        "content-type": "application/json",
        "terra-signature": f"t={timestamp},v1={sign(secret, timestamp, body)}",
        "x-terra-trace-id": trace or uuid.uuid4().hex,
    }
    return headers


def body_of(document: dict[str, Any]) -> bytes:
    # Terra's own serialisation (spacing, key order) must be kept byte for byte: the signature covers it.
    return json.dumps(document, indent=1).encode()


def user(reference_id: uuid.UUID | str | None, terra_user_id: str = "terra-user-1") -> dict[str, Any]:
    return {
        "user_id": terra_user_id,
        "provider": "OURA",
        "reference_id": None if reference_id is None else str(reference_id),
        "scopes": None,
        "last_webhook_update": None,
    }


def auth_event(reference_id: uuid.UUID | str, terra_user_id: str = "terra-user-1") -> dict[str, Any]:
    return {
        "type": "auth",
        "user": user(reference_id, terra_user_id),
        "status": "success",
        "reference_id": str(reference_id),
        "widget_session_id": uuid.uuid4().hex,
        "version": "2022-03-16",
    }


DAY_START = datetime(2026, 11, 30, tzinfo=UTC)


def daily_event(reference_id: uuid.UUID | str | None, terra_user_id: str = "terra-user-1") -> dict[str, Any]:
    return {
        "type": "daily",
        "user": user(reference_id, terra_user_id),
        "version": "2022-03-16",
        "data": [
            {
                "metadata": {
                    "start_time": DAY_START.isoformat(),
                    "end_time": "2026-12-01T00:00:00+00:00",
                    "upload_type": 1,
                    "timestamp_localization": 0,
                },
                "heart_rate_data": {
                    "summary": {"resting_hr_bpm": 54.0, "avg_hrv_rmssd": 48.5, "avg_hrv_sdnn": None},
                    "detailed": {"hr_samples": [], "hrv_samples_rmssd": []},
                },
                "stress_data": {"avg_stress_level": 31, "max_stress_level": 77, "samples": []},
                "distance_data": {"steps": 8412, "distance_meters": 6120.5},
                "scores": {"activity": 70, "recovery": 65, "sleep": 81},
            }
        ],
    }


def sleep_event(reference_id: uuid.UUID | str, terra_user_id: str = "terra-user-1") -> dict[str, Any]:
    return {
        "type": "sleep",
        "user": user(reference_id, terra_user_id),
        "version": "2022-03-16",
        "data": [
            {
                "metadata": {
                    "start_time": "2026-11-30T23:10:00+00:00",
                    "end_time": "2026-12-01T06:55:00+00:00",
                    "upload_type": 1,
                },
                "sleep_durations_data": {
                    "asleep": {
                        "duration_asleep_state_seconds": 25200,
                        "duration_deep_sleep_state_seconds": 5400,
                        "duration_light_sleep_state_seconds": 14000,
                        "duration_REM_sleep_state_seconds": 5800,
                    },
                    "awake": {"duration_awake_state_seconds": 1500},
                    "sleep_efficiency": 0.94,
                },
                "data_enrichment": {"sleep_score": 84},
            }
        ],
    }


@contextmanager
def ingest_worker(
    settings: Settings, log_dir: Path, name: str = "worker"
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` on every queue, with ``settings`` passed as the service's environment; the
    broker's keys under the settings' prefix are purged when it stops."""
    env = {
        **os.environ,
        "RHYTHM_ENV": "test",
        "RHYTHM_DATABASE_URL": settings.database_url,
        "RHYTHM_BROKER_URL": settings.broker_url,
        "RHYTHM_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "RHYTHM_TERRA_WEBHOOK_SECRET": settings.terra_webhook_secret.get_secret_value(),
        "RHYTHM_WEBHOOK_RETRY_BACKOFF": str(settings.webhook_retry_backoff.total_seconds()),
        "RHYTHM_WEBHOOK_RETRY_BACKOFF_MAX": str(settings.webhook_retry_backoff_max.total_seconds()),
        "RHYTHM_WEBHOOK_MAX_ATTEMPTS": str(settings.webhook_max_attempts),
    }
    args = ["worker", "--pool", "solo", "-Q", "ingest,calendar,finetune,default"]
    args += ["-n", f"ingest-{secrets.token_hex(4)}@%h", "--without-mingle", "--without-gossip"]
    args += ["--without-heartbeat", "-l", "INFO"]
    try:
        with celery_process(args, env, log_dir / f"{name}.log") as process:
            yield process
    finally:
        purge_broker(settings)


def purge_broker(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.broker_url)
    keys = list(client.scan_iter(match=f"{settings.broker_key_prefix}*"))
    if keys:
        client.delete(*keys)


def queued(settings: Settings, queue: str = "ingest") -> list[dict[str, Any]]:
    """The messages waiting on ``queue`` under the settings' key prefix (their Celery headers)."""
    client = redis.Redis.from_url(settings.broker_url)
    raw = client.lrange(f"{settings.broker_key_prefix}{queue}", 0, -1)
    return [json.loads(message)["headers"] for message in raw]

"""Each provider's documented webhook deliveries, signed as the provider signs them, and REST documents."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

from pydantic import SecretStr

from app.core.config import Settings
from bridges.oura.provider import sign as oura_sign
from bridges.whoop.provider import sign as whoop_sign


def wearable_settings(
    settings: Settings, api_url: str = "http://127.0.0.1:9", **overrides: object
) -> Settings:
    """``settings`` with every wearable provider configured; REST and token URLs on ``api_url``."""
    values: dict[str, object] = {
        "whoop_client_id": "whoop-client",
        "whoop_client_secret": SecretStr("whoop-secret-" + secrets.token_hex(8)),
        "whoop_api_base_url": api_url,
        "whoop_token_url": f"{api_url}/oauth/token",
        "oura_client_id": "oura-client",
        "oura_client_secret": SecretStr("oura-secret-" + secrets.token_hex(8)),
        "oura_verification_token": SecretStr("oura-verify-" + secrets.token_hex(8)),
        "oura_api_base_url": api_url,
        "oura_token_url": f"{api_url}/oauth/token",
        "google_health_client_id": "gh-client",
        "google_health_client_secret": SecretStr("gh-client-secret"),
        "google_health_webhook_secret": SecretStr("gh-webhook-" + secrets.token_hex(8)),
        "google_health_api_base_url": api_url,
        "google_health_token_url": f"{api_url}/oauth/token",
        "garmin_webhook_path_secret": SecretStr("garmin-" + secrets.token_urlsafe(16)),
        "broker_key_prefix": f"rhythm-test-{secrets.token_hex(6)}:",
        "provider_api_max_retry_after": 2,
    }
    values.update(overrides)
    return settings.model_copy(update={k: _typed(settings, k, v) for k, v in values.items()})


def _typed(settings: Settings, key: str, value: object) -> object:
    from datetime import timedelta

    if isinstance(getattr(settings, key), timedelta) and isinstance(value, int | float):
        return timedelta(seconds=value)
    return value


def body_of(document: dict[str, Any]) -> bytes:
    # Providers' own spacing and key order, kept byte for byte: the signature covers the exact bytes.
    return json.dumps(document, indent=2).encode()


# --- WHOOP ------------------------------------------------------------------------------------------------

WHOOP_USER = 10129
SLEEP_ID = "ecfc6a15-4661-442f-a9a4-f160dd7afae8"
CYCLE_ID = 93845


def whoop_event(
    kind: str = "recovery.updated", user_id: int = WHOOP_USER, object_id: str = SLEEP_ID
) -> dict[str, Any]:
    return {"user_id": user_id, "id": object_id, "type": kind, "trace_id": str(uuid.uuid4())}


def whoop_headers(settings: Settings, body: bytes, *, at: float | None = None) -> dict[str, str]:
    timestamp = int((time.time() if at is None else at) * 1000)
    secret = settings.whoop_client_secret.get_secret_value()
    return {
        "content-type": "application/json",
        "x-whoop-signature": whoop_sign(secret, timestamp, body),
        "x-whoop-signature-timestamp": str(timestamp),
    }


def whoop_sleep(nap: bool = False) -> dict[str, Any]:
    return {
        "id": SLEEP_ID,
        "cycle_id": CYCLE_ID,
        "user_id": WHOOP_USER,
        "created_at": "2026-12-01T07:10:00.000Z",
        "updated_at": "2026-12-01T07:10:00.000Z",
        "start": "2026-11-30T23:00:00.000Z",
        "end": "2026-12-01T07:00:00.000Z",
        "timezone_offset": "+01:00",
        "nap": nap,
        "score_state": "SCORED",
        "score": {
            "stage_summary": {
                "total_in_bed_time_milli": 28_800_000,
                "total_awake_time_milli": 1_800_000,
                "total_no_data_time_milli": 0,
                "total_light_sleep_time_milli": 14_400_000,
                "total_slow_wave_sleep_time_milli": 5_400_000,
                "total_rem_sleep_time_milli": 7_200_000,
                "sleep_cycle_count": 4,
                "disturbance_count": 9,
            },
            "respiratory_rate": 15.2,
            "sleep_performance_percentage": 88.0,
            "sleep_consistency_percentage": 90.0,
            "sleep_efficiency_percentage": 93.7,
        },
    }


def whoop_recovery() -> dict[str, Any]:
    return {
        "cycle_id": CYCLE_ID,
        "sleep_id": SLEEP_ID,
        "user_id": WHOOP_USER,
        "created_at": "2026-12-01T07:12:00.000Z",
        "updated_at": "2026-12-01T07:12:00.000Z",
        "score_state": "SCORED",
        "score": {
            "user_calibrating": False,
            "recovery_score": 44.0,
            "resting_heart_rate": 64.0,
            "hrv_rmssd_milli": 31.8,
            "spo2_percentage": 95.6,
            "skin_temp_celsius": 33.7,
        },
    }


def whoop_cycle() -> dict[str, Any]:
    return {
        "id": CYCLE_ID,
        "user_id": WHOOP_USER,
        "start": "2026-11-30T23:00:00.000Z",
        "end": None,
        "timezone_offset": "+01:00",
        "score_state": "SCORED",
        "score": {"strain": 10.5, "kilojoule": 8288.3, "average_heart_rate": 68, "max_heart_rate": 141},
    }


# --- Oura -------------------------------------------------------------------------------------------------

OURA_USER = "oura-user-7"
OURA_SLEEP_ID = "8f9a5221-639e-4a85-81cb-4065ef23f979"


def oura_event(
    data_type: str = "sleep", object_id: str = OURA_SLEEP_ID, user_id: str = OURA_USER
) -> dict[str, Any]:
    return {
        "event_type": "update",
        "data_type": data_type,
        "object_id": object_id,
        "event_time": "2026-12-01T07:30:12.000+00:00",
        "user_id": user_id,
    }


def oura_headers(settings: Settings, body: bytes, *, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    secret = settings.oura_client_secret.get_secret_value()
    return {
        "content-type": "application/json",
        "x-oura-signature": oura_sign(secret, timestamp, body),
        "x-oura-timestamp": timestamp,
    }


def oura_sleep() -> dict[str, Any]:
    return {
        "id": OURA_SLEEP_ID,
        "day": "2026-12-01",
        "type": "long_sleep",
        "bedtime_start": "2026-11-30T23:05:00+01:00",
        "bedtime_end": "2026-12-01T07:05:00+01:00",
        "average_hrv": 52,
        "average_heart_rate": 55.1,
        "lowest_heart_rate": 49,
        "deep_sleep_duration": 4800,
        "rem_sleep_duration": 6000,
        "light_sleep_duration": 15000,
        "awake_time": 3000,
        "total_sleep_duration": 25800,
        "efficiency": 90,
        "latency": 600,
    }


# --- Google Health ----------------------------------------------------------------------------------------

GOOGLE_USER = "1234567890"


def google_event(
    data_type: str = "daily-heart-rate-variability", user_id: str = GOOGLE_USER
) -> dict[str, Any]:
    return {
        "healthUserId": user_id,
        "dataType": data_type,
        "operation": "UPSERT",
        "intervals": [{"startTime": "2026-11-30T00:00:00Z", "endTime": "2026-12-01T00:00:00Z"}],
    }


def google_headers(settings: Settings, secret: str | None = None) -> dict[str, str]:
    token = settings.google_health_webhook_secret.get_secret_value() if secret is None else secret
    return {"content-type": "application/json", "authorization": f"Bearer {token}"}


# --- Garmin -----------------------------------------------------------------------------------------------

GARMIN_USER = "4aacafe82427c251df9c9592d0c06768"


def garmin_push(user_id: str = GARMIN_USER, stress: int = 34) -> dict[str, Any]:
    return {
        "dailies": [
            {
                "userId": user_id,
                "userAccessToken": "8f57a6f1-26ba-4b05-a7cd-c6b525a4c7a2",
                "summaryId": f"{user_id}-1764547200",
                "calendarDate": "2026-12-01",
                "startTimeInSeconds": 1764547200,
                "startTimeOffsetInSeconds": 3600,
                "durationInSeconds": 86400,
                "steps": 9120,
                "restingHeartRateInBeatsPerMinute": 52,
                "averageStressLevel": stress,
                "maxStressLevel": 88,
            }
        ],
        "sleeps": [
            {
                "userId": user_id,
                "userAccessToken": "8f57a6f1-26ba-4b05-a7cd-c6b525a4c7a2",
                "summaryId": f"{user_id}-sleep-1764543600",
                "calendarDate": "2026-12-01",
                "startTimeInSeconds": 1764543600,
                "startTimeOffsetInSeconds": 3600,
                "durationInSeconds": 27000,
                "deepSleepDurationInSeconds": 5400,
                "lightSleepDurationInSeconds": 15600,
                "remSleepInSeconds": 6000,
                "awakeDurationInSeconds": 900,
                "overallSleepScore": {"value": 81, "qualifierKey": "GOOD"},
            }
        ],
    }

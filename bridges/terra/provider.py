"""Terra's webhook scheme and mapping.

Authenticity: ``terra-signature: t=<unix>,v1=<hex>`` where ``v1 = HMAC-SHA256(secret, "{t}.{raw body}")``;
several ``v1`` may appear while a secret rotates (any match passes). Deliveries older or newer than 300 s are
refused: inside the window the inbox's unique ``(source, external_id)`` stops replays. Dedupe key: the
``X-Terra-Trace-Id`` header, else a digest of the parsed payload (re-signing changes no field).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any, Protocol, Self

from pydantic import SecretStr, ValidationError

from bridges.meters.signals import RawReading, SignalKind, Unit
from bridges.terra.schemas import DataItem, TerraEvent
from bridges.webhooks import (
    DEFAULT_TOLERANCE_S,
    ConnectionAction,
    ConnectionChange,
    Headers,
    MalformedPayload,
    SignatureError,
    UserRef,
    WebhookProvider,
    body_digest,
    check_fresh,
    register_provider,
    timestamp_digits,
)

SIGNATURE_HEADER = "terra-signature"
TRACE_HEADER = "x-terra-trace-id"
SOURCE_MAX_LENGTH = 32  # signal_readings.source

_LINK_TYPES = {"auth": ConnectionAction.LINK}
_UNLINK_TYPES = {"deauth", "access_revoked"}


class TerraSettings(Protocol):
    @property
    def terra_webhook_secret(self) -> SecretStr: ...


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` value Terra sends for ``body`` at ``timestamp`` (also used by tests and the benchmark)."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _parse_signature_header(value: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = timestamp_digits(item)
        elif key == "v1":
            signatures.append(item)
    if timestamp is None or not signatures:
        raise SignatureError("signature header lacks t= or v1=")
    return timestamp, signatures


@register_provider
class TerraProvider(WebhookProvider[TerraEvent]):
    source = "terra"

    def __init__(self, secret: str, tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
        self._secret = secret
        self._tolerance_s = tolerance_s

    @classmethod
    def from_settings(cls, settings: Any) -> Self | None:
        configured: TerraSettings = settings
        secret = configured.terra_webhook_secret.get_secret_value()
        return cls(secret) if secret else None

    def verify(self, headers: Headers, body: bytes, now: datetime) -> None:
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            raise SignatureError("missing terra-signature header")
        timestamp, signatures = _parse_signature_header(header)
        check_fresh(timestamp, now, self._tolerance_s)
        expected = sign(self._secret, timestamp, body)
        # Every candidate is compared (constant time each), so timing tells nothing about which one matched.
        matches = [hmac.compare_digest(expected, candidate) for candidate in signatures]
        if not any(matches):
            raise SignatureError("no signature matches")

    def parse(self, headers: Headers, body: bytes) -> TerraEvent:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedPayload("the body is not JSON") from exc
        if not isinstance(document, dict):
            raise MalformedPayload("the body is not a JSON object")
        try:
            return TerraEvent.model_validate(document)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in error["loc"]) for error in exc.errors()})
            raise MalformedPayload("not a Terra event: " + ", ".join(fields[:10])) from exc

    def external_id(self, headers: Headers, payload: TerraEvent) -> str:
        trace = headers.get(TRACE_HEADER, "").strip()
        return f"trace:{trace}"[:255] if trace else body_digest(payload.model_dump_json().encode())

    def user_ref(self, payload: TerraEvent) -> UserRef:
        user = payload.user or payload.new_user
        if user is None:
            return UserRef(external_user_id=None, our_user_id=payload.reference_id)
        return UserRef(external_user_id=user.user_id, our_user_id=user.reference_id or payload.reference_id)

    def connection_change(self, payload: TerraEvent) -> ConnectionChange | None:
        if payload.type == "auth" and payload.status in (None, "success"):
            return ConnectionChange(ConnectionAction.LINK, self.user_ref(payload))
        if payload.type in _UNLINK_TYPES:
            return ConnectionChange(ConnectionAction.UNLINK, self.user_ref(payload))
        if payload.type == "user_reauth" and payload.old_user is not None and payload.new_user is not None:
            old = UserRef(payload.old_user.user_id, payload.old_user.reference_id or payload.reference_id)
            return ConnectionChange(
                ConnectionAction.RELINK, old, new_external_user_id=payload.new_user.user_id
            )
        return None

    def to_readings(self, payload: TerraEvent) -> list[RawReading]:
        provider = payload.user.provider if payload.user and payload.user.provider else None
        source = (f"terra/{provider.lower()}" if provider else "terra")[:SOURCE_MAX_LENGTH]
        mapper = {"daily": _daily, "sleep": _sleep, "body": _body}.get(payload.type)
        if mapper is None:
            return []
        return [
            RawReading(kind, value, unit, observed_at, source)
            for item in payload.data
            for kind, value, unit, observed_at in mapper(item)
            if value is not None
        ]


_Value = tuple[SignalKind, float | None, Unit, datetime]


def _daily(item: DataItem) -> list[_Value]:
    # A day's summary is keyed by the day's start, so Terra's later updates of the same day overwrite it.
    at = item.metadata.start_time
    heart = item.heart_rate_data.summary if item.heart_rate_data else None
    return [
        (SignalKind.RESTING_HEART_RATE, heart.resting_hr_bpm if heart else None, Unit.BPM, at),
        (SignalKind.HRV_RMSSD, heart.avg_hrv_rmssd if heart else None, Unit.MILLISECOND, at),
        (SignalKind.HRV_SDNN, heart.avg_hrv_sdnn if heart else None, Unit.MILLISECOND, at),
        # Terra's stress level is 0-100; a device's "no data" sentinel (Garmin's -1) is rejected downstream.
        (
            SignalKind.STRESS_SCORE,
            item.stress_data.avg_stress_level if item.stress_data else None,
            Unit.SCORE,
            at,
        ),
        (SignalKind.STEPS, item.distance_data.steps if item.distance_data else None, Unit.COUNT, at),
    ]


def _sleep(item: DataItem) -> list[_Value]:
    # A night belongs to the morning it ends in.
    at = item.metadata.end_time
    durations = item.sleep_durations_data
    asleep = durations.asleep if durations else None
    awake = durations.awake if durations else None
    heart = item.heart_rate_data.summary if item.heart_rate_data else None
    deep = asleep.duration_deep_sleep_state_seconds if asleep else None
    light = asleep.duration_light_sleep_state_seconds if asleep else None
    rem = asleep.duration_rem_sleep_state_seconds if asleep else None
    values: list[_Value] = [
        (
            SignalKind.SLEEP_DURATION,
            asleep.duration_asleep_state_seconds if asleep else None,
            Unit.SECOND,
            at,
        ),
        (SignalKind.SLEEP_DEEP, deep, Unit.SECOND, at),
        (SignalKind.SLEEP_LIGHT, light, Unit.SECOND, at),
        (SignalKind.SLEEP_REM, rem, Unit.SECOND, at),
        (SignalKind.SLEEP_AWAKE, awake.duration_awake_state_seconds if awake else None, Unit.SECOND, at),
        (
            SignalKind.SLEEP_SCORE,
            item.data_enrichment.sleep_score if item.data_enrichment else None,
            Unit.SCORE,
            at,
        ),
        (SignalKind.HRV_RMSSD, heart.avg_hrv_rmssd if heart else None, Unit.MILLISECOND, at),
    ]
    # Deep % of time asleep (deep + REM + light), as ``sleep_stage_readings`` defines it; only with all three
    # stages, since a share of a partial total would overstate deep sleep.
    if deep is not None and light is not None and rem is not None and deep + light + rem > 0:
        values.append((SignalKind.DEEP_SLEEP_PERCENT, 100.0 * deep / (deep + light + rem), Unit.PERCENT, at))
    return values


def _body(item: DataItem) -> list[_Value]:
    at = item.metadata.start_time
    heart_rate = item.heart_data.heart_rate_data if item.heart_data else None
    heart = heart_rate.summary if heart_rate else None
    return [
        (SignalKind.RESTING_HEART_RATE, heart.resting_hr_bpm if heart else None, Unit.BPM, at),
        (SignalKind.HRV_RMSSD, heart.avg_hrv_rmssd if heart else None, Unit.MILLISECOND, at),
    ]

"""Oura's webhook scheme, its REST reads and the mapping to readings.

Authenticity: ``x-oura-signature`` = hex HMAC-SHA256(client secret, ``x-oura-timestamp`` ‖ raw body); Oura
sends the hex upper-case, so it is compared case-insensitively (constant time on the lower-cased forms).
Older or newer than 300 s is refused. Dedupe key: (data_type, object_id, event_type, event_time). The
callback URL is verified by a ``GET ?verification_token=…&challenge=…`` answered with the challenge.
Notify-only: the worker reads ``GET /v2/usercollection/{data_type}/{object_id}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol, Self

from pydantic import SecretStr, ValidationError

from bridges.meters.signals import RawReading, SignalKind, Unit
from bridges.oura.schemas import DailyActivity, DailyScore, DailyStress, OuraEvent, SleepPeriod
from bridges.webhooks import (
    FetchingProvider,
    Headers,
    MalformedPayload,
    ProviderApi,
    SignatureError,
    UserRef,
    WebhookProvider,
    check_fresh,
    hmac_sha256,
    parse_model,
    register_provider,
    same_secret,
    timestamp_digits,
)

SIGNATURE_HEADER = "x-oura-signature"
TIMESTAMP_HEADER = "x-oura-timestamp"
SOURCE = "oura"
MAX_PAGES = 100
# Above this a timestamp can only be milliseconds (seconds reach it in the year 5138).
_MILLISECONDS_FROM = 100_000_000_000


class OuraSettings(Protocol):
    @property
    def oura_client_secret(self) -> SecretStr: ...

    @property
    def oura_verification_token(self) -> SecretStr: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``x-oura-signature`` Oura sends (upper-case hex) for ``body`` at ``timestamp``."""
    return hmac_sha256(secret, timestamp.encode() + body).hex().upper()


def _day_start(day: date) -> datetime:
    # A daily document is keyed by its day's start, so Oura's later updates of the same day overwrite it.
    return datetime.combine(day, time(), tzinfo=UTC)


def _sleep(document: Any) -> Iterator[RawReading]:
    period = _parse(SleepPeriod, document)
    # Only the main night: naps and rest periods would pull the nightly HRV and stage baselines around.
    if period.type not in (None, "long_sleep"):
        return
    at = period.bedtime_end
    for kind, value, unit in (
        (SignalKind.HRV_RMSSD, period.average_hrv, Unit.MILLISECOND),  # Oura's HRV is RMSSD
        (SignalKind.RESTING_HEART_RATE, period.lowest_heart_rate, Unit.BPM),
        (SignalKind.SLEEP_DURATION, period.total_sleep_duration, Unit.SECOND),
        (SignalKind.SLEEP_DEEP, period.deep_sleep_duration, Unit.SECOND),
        (SignalKind.SLEEP_REM, period.rem_sleep_duration, Unit.SECOND),
        (SignalKind.SLEEP_LIGHT, period.light_sleep_duration, Unit.SECOND),
        (SignalKind.SLEEP_AWAKE, period.awake_time, Unit.SECOND),
    ):
        if value is not None:
            yield RawReading(kind, value, unit, at, SOURCE)
    deep, rem, light = period.deep_sleep_duration, period.rem_sleep_duration, period.light_sleep_duration
    if deep is not None and rem is not None and light is not None and deep + rem + light > 0:
        yield RawReading(
            SignalKind.DEEP_SLEEP_PERCENT, 100.0 * deep / (deep + rem + light), Unit.PERCENT, at, SOURCE
        )


def _daily_score(kind: SignalKind) -> Any:
    def mapper(document: Any) -> Iterator[RawReading]:
        daily = _parse(DailyScore, document)
        if daily.score is not None:
            yield RawReading(kind, daily.score, Unit.SCORE, _day_start(daily.day), SOURCE)

    return mapper


def _activity(document: Any) -> Iterator[RawReading]:
    activity = _parse(DailyActivity, document)
    if activity.steps is not None:
        yield RawReading(SignalKind.STEPS, activity.steps, Unit.COUNT, _day_start(activity.day), SOURCE)


def _stress(document: Any) -> Iterator[RawReading]:
    # Oura gives no 0-100 stress score, only seconds of high stress and of high recovery. Our score is the
    # stressed share of that time (0 = all recovery, 100 = all stress), a day with neither gives none.
    stress = _parse(DailyStress, document)
    high, recovery = stress.stress_high, stress.recovery_high
    if high is not None and recovery is not None and high + recovery > 0:
        score = 100.0 * high / (high + recovery)
        yield RawReading(SignalKind.STRESS_SCORE, score, Unit.SCORE, _day_start(stress.day), SOURCE)


# The data types whose documents carry something the meters read; others are acknowledged and ignored.
MAPPERS = {
    "sleep": _sleep,
    "daily_sleep": _daily_score(SignalKind.SLEEP_SCORE),
    "daily_readiness": _daily_score(SignalKind.READINESS_SCORE),
    "daily_activity": _activity,
    "daily_stress": _stress,
}


def _parse(model: type[Any], document: Any) -> Any:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise MalformedPayload(f"unexpected Oura {model.__name__}: {exc.error_count()} errors") from exc


@register_provider
class OuraProvider(WebhookProvider[OuraEvent], FetchingProvider[OuraEvent]):
    source = "oura"

    def __init__(self, secret: str, verification_token: str) -> None:
        self._secret = secret
        self._verification_token = verification_token

    @classmethod
    def from_settings(cls, settings: Any) -> Self | None:
        configured: OuraSettings = settings
        secret = configured.oura_client_secret.get_secret_value()
        return cls(secret, configured.oura_verification_token.get_secret_value()) if secret else None

    def verify(self, headers: Headers, body: bytes, now: datetime) -> None:
        signature = headers.get(SIGNATURE_HEADER, "").strip()
        timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
        if not signature or not timestamp:
            raise SignatureError("missing Oura signature or timestamp header")
        value = timestamp_digits(timestamp)
        check_fresh(value / 1000.0 if value >= _MILLISECONDS_FROM else float(value), now)
        if not same_secret(sign(self._secret, timestamp, body).lower(), signature.lower()):
            raise SignatureError("signature does not match")

    def answer_challenge(self, query: Mapping[str, str]) -> dict[str, str] | None:
        if not self._verification_token:
            return None  # no token configured: the handshake endpoint stays closed (404)
        given = query.get("verification_token", "")
        challenge = query.get("challenge", "")
        if not challenge or not same_secret(self._verification_token, given):
            raise SignatureError("verification token does not match")
        return {"challenge": challenge}

    def parse(self, headers: Headers, body: bytes) -> OuraEvent:
        return parse_model(body, OuraEvent, "Oura")

    def external_id(self, headers: Headers, payload: OuraEvent) -> str:
        key = f"{payload.data_type}:{payload.object_id}:{payload.event_type}:{payload.event_time.isoformat()}"
        return key[:255]

    def user_ref(self, payload: OuraEvent) -> UserRef:
        return UserRef(external_user_id=payload.user_id)

    def to_readings(self, payload: OuraEvent) -> list[RawReading]:
        return []  # notify-only: see fetch_readings

    def fetch_readings(self, payload: OuraEvent, api: ProviderApi) -> list[RawReading]:
        mapper = MAPPERS.get(payload.data_type)
        if mapper is None or payload.event_type == "delete":
            return []
        document = api.get_json(f"/v2/usercollection/{payload.data_type}/{payload.object_id}")
        return [] if document is None else list(mapper(document))

    def fetch_window(self, api: ProviderApi, start: datetime, end: datetime) -> list[RawReading]:
        readings: list[RawReading] = []
        # Oura filters by the user's local day; a day either side keeps the window's edges covered.
        params = {
            "start_date": (start - timedelta(days=1)).date().isoformat(),
            "end_date": (end + timedelta(days=1)).date().isoformat(),
        }
        for data_type, mapper in MAPPERS.items():
            page_params = dict(params)
            for _ in range(MAX_PAGES):
                page = api.get_json(f"/v2/usercollection/{data_type}", page_params) or {}
                for document in page.get("data") or []:
                    readings += mapper(document)
                token = page.get("next_token")
                if not token:
                    break
                page_params = {**params, "next_token": str(token)}
        return readings

"""Google Health's webhook scheme, its REST reads and the mapping to readings.

Authenticity: the subscriber was created with a secret that Google echoes as ``Authorization: Bearer
<secret>`` on every delivery, compared in constant time (the asymmetric ``GOOGLE-HEALTH-API-SIGNATURE`` is
not used). There is no signed timestamp and no delivery id, so the dedupe key is a digest of the body: a
redelivery of the same notification is the same bytes. The inbox never stores the ``Authorization`` header.

Verification: Google posts ``{"type": "verification"}`` with the secret (→ 202 here) and without it (→ 401).
Notify-only: the worker lists ``users/me/dataTypes/{dataType}/dataPoints`` over the changed intervals, through
google-api-python-client (``client.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol, Self

from pydantic import SecretStr, ValidationError

from bridges.google_health.client import ApiHttp, health_service, list_data_points
from bridges.google_health.schemas import DataPoint, GoogleHealthEvent
from bridges.meters.signals import RawReading, SignalKind, Unit
from bridges.webhooks import (
    FetchingProvider,
    Headers,
    MalformedPayload,
    ProviderApi,
    SignatureError,
    UserRef,
    WebhookProvider,
    body_digest,
    parse_model,
    register_provider,
    same_secret,
)

SOURCE = "google_health"
MAX_PAGES = 50
PAGE_SIZE = 100
# The data types the meters read, and the filter field Google documents for each (AIP-160).
FILTERS = {
    "daily-heart-rate-variability": ("daily_heart_rate_variability.date", "date"),
    "daily-resting-heart-rate": ("daily_resting_heart_rate.date", "date"),
    "sleep": ("sleep.interval.end_time", "time"),
}


class GoogleHealthSettings(Protocol):
    @property
    def google_health_webhook_secret(self) -> SecretStr: ...


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _readings(point: DataPoint) -> Iterator[RawReading]:
    hrv = point.dailyHeartRateVariability
    if hrv is not None and hrv.averageHeartRateVariabilityMilliseconds is not None:
        # Google's daily HRV is RMSSD (its SDNN field lives on the per-sample message, never read here).
        at = _day_start(hrv.date.as_date())
        yield RawReading(
            SignalKind.HRV_RMSSD, hrv.averageHeartRateVariabilityMilliseconds, Unit.MILLISECOND, at, SOURCE
        )
    rhr = point.dailyRestingHeartRate
    if rhr is not None:
        at = _day_start(rhr.date.as_date())
        yield RawReading(SignalKind.RESTING_HEART_RATE, float(rhr.beatsPerMinute), Unit.BPM, at, SOURCE)
    sleep = point.sleep
    if sleep is not None and sleep.summary is not None:
        metadata = sleep.metadata
        if metadata is not None and (metadata.nap or metadata.mainSleep is False):
            return
        at = sleep.interval.endTime
        if sleep.summary.minutesAsleep is not None:
            yield RawReading(
                SignalKind.SLEEP_DURATION, float(sleep.summary.minutesAsleep), Unit.MINUTE, at, SOURCE
            )
        if sleep.summary.minutesAwake is not None:
            yield RawReading(
                SignalKind.SLEEP_AWAKE, float(sleep.summary.minutesAwake), Unit.MINUTE, at, SOURCE
            )


def _filter(data_type: str, start: datetime, end: datetime) -> str:
    field, kind = FILTERS[data_type]
    if kind == "date":
        low_day, high_day = start.date().isoformat(), (end.date() + timedelta(days=1)).isoformat()
        return f'{field} >= "{low_day}" AND {field} < "{high_day}"'
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    low, high = start.astimezone(UTC).strftime(stamp), end.astimezone(UTC).strftime(stamp)
    return f'{field} >= "{low}" AND {field} < "{high}"'


def _list(api: ProviderApi, data_type: str, start: datetime, end: datetime) -> list[RawReading]:
    service = health_service(ApiHttp(api))
    return points_to_readings(
        list_data_points(service, data_type, _filter(data_type, start, end), PAGE_SIZE, MAX_PAGES)
    )


def points_to_readings(documents: list[Any]) -> list[RawReading]:
    readings: list[RawReading] = []
    for document in documents:
        try:
            point = DataPoint.model_validate(document)
        except ValidationError as exc:
            raise MalformedPayload(
                f"unexpected Google Health data point: {exc.error_count()} errors"
            ) from exc
        readings += _readings(point)
    return readings


@register_provider
class GoogleHealthProvider(WebhookProvider[GoogleHealthEvent], FetchingProvider[GoogleHealthEvent]):
    source = "google-health"

    def __init__(self, secret: str) -> None:
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: Any) -> Self | None:
        configured: GoogleHealthSettings = settings
        secret = configured.google_health_webhook_secret.get_secret_value()
        return cls(secret) if secret else None

    def verify(self, headers: Headers, body: bytes, now: datetime) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token or not same_secret(self._secret, token.strip()):
            raise SignatureError("missing or wrong bearer secret")

    def parse(self, headers: Headers, body: bytes) -> GoogleHealthEvent:
        return parse_model(body, GoogleHealthEvent, "Google Health")

    def external_id(self, headers: Headers, payload: GoogleHealthEvent) -> str:
        return body_digest(payload.model_dump_json().encode())

    def user_ref(self, payload: GoogleHealthEvent) -> UserRef:
        return UserRef(external_user_id=payload.healthUserId)

    def to_readings(self, payload: GoogleHealthEvent) -> list[RawReading]:
        return []  # notify-only: see fetch_readings

    def fetch_readings(self, payload: GoogleHealthEvent, api: ProviderApi) -> list[RawReading]:
        if payload.is_verification or payload.operation != "UPSERT" or payload.dataType not in FILTERS:
            return []
        if payload.intervals:
            start = min(interval.startTime for interval in payload.intervals)
            end = max(interval.endTime for interval in payload.intervals)
        else:
            # No interval named: re-read the last two days, which the upserts make harmless.
            end = datetime.now(UTC)
            start = end - timedelta(days=2)
        return _list(api, payload.dataType, start, end)

    def fetch_window(self, api: ProviderApi, start: datetime, end: datetime) -> list[RawReading]:
        return [reading for data_type in FILTERS for reading in _list(api, data_type, start, end)]

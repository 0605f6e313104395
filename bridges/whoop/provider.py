"""WHOOP's webhook scheme, its REST reads and the mapping to readings.

Authenticity: ``X-WHOOP-Signature`` = base64(HMAC-SHA256(client secret, timestamp ‖ raw body)), no separator,
with the timestamp (Unix **milliseconds**) in ``X-WHOOP-Signature-Timestamp``; older or newer than 300 s is
refused. Dedupe key: the payload's ``trace_id``. The delivery names an object only (notify-only), so the
worker fetches it: on ``recovery.*`` the id is the *sleep* UUID, and the recovery is reached through the
sleep's ``cycle_id`` (``GET /v2/recovery/{id}`` does not exist in v2; open-wearables hit 404s there).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol, Self

from pydantic import SecretStr, ValidationError

from bridges.meters.signals import RawReading, SignalKind, Unit
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
from bridges.whoop.schemas import Cycle, Recovery, Sleep, WhoopEvent

SIGNATURE_HEADER = "x-whoop-signature"
TIMESTAMP_HEADER = "x-whoop-signature-timestamp"
SOURCE = "whoop"
SCORED = "SCORED"
PAGE_LIMIT = 25  # WHOOP's maximum page size for collections
MAX_PAGES = 100  # 28 days fit in a few pages; a provider that never stops paging must not loop forever


class WhoopSettings(Protocol):
    @property
    def whoop_client_secret(self) -> SecretStr: ...


def sign(secret: str, timestamp_ms: int, body: bytes) -> str:
    """The ``X-WHOOP-Signature`` WHOOP sends for ``body`` at ``timestamp_ms`` (tests and benchmark use it)."""
    return base64.b64encode(hmac_sha256(secret, str(timestamp_ms).encode() + body)).decode()


@register_provider
class WhoopProvider(WebhookProvider[WhoopEvent], FetchingProvider[WhoopEvent]):
    source = "whoop"

    def __init__(self, secret: str) -> None:
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: Any) -> Self | None:
        configured: WhoopSettings = settings
        secret = configured.whoop_client_secret.get_secret_value()
        return cls(secret) if secret else None

    def verify(self, headers: Headers, body: bytes, now: datetime) -> None:
        signature = headers.get(SIGNATURE_HEADER)
        timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
        if not signature or not timestamp:
            raise SignatureError("missing WHOOP signature or timestamp header")
        milliseconds = timestamp_digits(timestamp)
        check_fresh(milliseconds / 1000.0, now)
        # The signed message is the header's exact digits followed by the body, as WHOOP computes it.
        if not same_secret(sign(self._secret, milliseconds, body), signature.strip()):
            raise SignatureError("signature does not match")

    def parse(self, headers: Headers, body: bytes) -> WhoopEvent:
        return parse_model(body, WhoopEvent, "WHOOP")

    def external_id(self, headers: Headers, payload: WhoopEvent) -> str:
        return f"trace:{payload.trace_id}"

    def user_ref(self, payload: WhoopEvent) -> UserRef:
        # Only the provider's id: WHOOP never knows ours, and the stored connection decides who this is.
        return UserRef(external_user_id=str(payload.user_id))

    def to_readings(self, payload: WhoopEvent) -> list[RawReading]:
        return []  # notify-only: see fetch_readings

    def fetch_readings(self, payload: WhoopEvent, api: ProviderApi) -> list[RawReading]:
        resource, _, action = payload.type.partition(".")
        if action != "updated" or resource not in ("sleep", "recovery"):
            # Deletions leave stored readings as they are (the meters age them out); workouts carry nothing
            # the meters read. Acknowledged and handled, as WHOOP asks.
            return []
        sleep = _load(Sleep, api.get_json(f"/v2/activity/sleep/{payload.id}"))
        if sleep is None:
            return []
        if resource == "sleep":
            return list(_sleep_readings(sleep))
        if sleep.cycle_id is None:
            return []
        recovery = _load(Recovery, api.get_json(f"/v2/cycle/{sleep.cycle_id}/recovery"))
        cycle = _load(Cycle, api.get_json(f"/v2/cycle/{sleep.cycle_id}"))
        readings = list(_recovery_readings(recovery, sleep.end)) if recovery else []
        return readings + (list(_cycle_readings(cycle)) if cycle else [])

    def fetch_window(self, api: ProviderApi, start: datetime, end: datetime) -> list[RawReading]:
        sleeps = [_parse(Sleep, item) for item in _collection(api, "/v2/activity/sleep", start, end)]
        readings = [reading for sleep in sleeps for reading in _sleep_readings(sleep)]
        # A recovery is keyed by the end of its sleep, as in fetch_readings, so backfill and push agree.
        sleep_end = {sleep.id: sleep.end for sleep in sleeps}
        for item in _collection(api, "/v2/recovery", start, end):
            recovery = _parse(Recovery, item)
            if recovery.sleep_id in sleep_end:
                readings += _recovery_readings(recovery, sleep_end[recovery.sleep_id])
        for item in _collection(api, "/v2/cycle", start, end):
            readings += _cycle_readings(_parse(Cycle, item))
        return readings


def _parse(model: type[Any], document: Any) -> Any:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        # The provider's answer is not what its documentation says: worth a retry and an operator's look.
        raise MalformedPayload(f"unexpected WHOOP {model.__name__}: {exc.error_count()} errors") from exc


def _load(model: type[Any], document: Any) -> Any:
    return None if document is None else _parse(model, document)


def _collection(api: ProviderApi, path: str, start: datetime, end: datetime) -> Iterator[Any]:
    params = {"start": start.isoformat(), "end": end.isoformat(), "limit": str(PAGE_LIMIT)}
    for _ in range(MAX_PAGES):
        page = api.get_json(path, params) or {}
        yield from page.get("records") or []
        token = page.get("next_token")
        if not token:
            return
        params = {**params, "nextToken": str(token)}


def _sleep_readings(sleep: Sleep) -> Iterator[RawReading]:
    # Naps are not the night the meters read; unscored sleeps have no numbers yet (a later update has them).
    if sleep.nap or sleep.score_state != SCORED or sleep.score is None:
        return
    at = sleep.end  # a night belongs to the morning it ends in
    score = sleep.score
    if score.sleep_performance_percentage is not None:
        yield RawReading(SignalKind.SLEEP_SCORE, score.sleep_performance_percentage, Unit.SCORE, at, SOURCE)
    stages = score.stage_summary
    if stages is None:
        return
    deep, rem, light = (
        stages.total_slow_wave_sleep_time_milli,
        stages.total_rem_sleep_time_milli,
        stages.total_light_sleep_time_milli,
    )
    for kind, value in (
        (SignalKind.SLEEP_DEEP, deep),
        (SignalKind.SLEEP_REM, rem),
        (SignalKind.SLEEP_LIGHT, light),
        (SignalKind.SLEEP_AWAKE, stages.total_awake_time_milli),
    ):
        if value is not None:
            yield RawReading(kind, value, Unit.MILLISECOND, at, SOURCE)
    if stages.total_in_bed_time_milli is not None and stages.total_awake_time_milli is not None:
        asleep = stages.total_in_bed_time_milli - stages.total_awake_time_milli
        yield RawReading(SignalKind.SLEEP_DURATION, asleep, Unit.MILLISECOND, at, SOURCE)
    # WHOOP's documented deep share is slow-wave / (in bed − awake), i.e. of time asleep.
    if deep is not None and rem is not None and light is not None and deep + rem + light > 0:
        yield RawReading(
            SignalKind.DEEP_SLEEP_PERCENT, 100.0 * deep / (deep + rem + light), Unit.PERCENT, at, SOURCE
        )


def _recovery_readings(recovery: Recovery, at: datetime) -> Iterator[RawReading]:
    if recovery.score_state != SCORED or recovery.score is None:
        return
    score = recovery.score
    for kind, value, unit in (
        (SignalKind.RECOVERY_SCORE, score.recovery_score, Unit.SCORE),
        (SignalKind.RESTING_HEART_RATE, score.resting_heart_rate, Unit.BPM),
        # WHOOP's HRV is RMSSD (in the last slow-wave period): its own kind, never mixed with SDNN.
        (SignalKind.HRV_RMSSD, score.hrv_rmssd_milli, Unit.MILLISECOND),
    ):
        if value is not None:
            yield RawReading(kind, value, unit, at, SOURCE)


def _cycle_readings(cycle: Cycle) -> Iterator[RawReading]:
    if cycle.score_state != SCORED or cycle.score is None or cycle.score.strain is None:
        return
    yield RawReading(SignalKind.STRAIN_SCORE, cycle.score.strain, Unit.SCORE_OF_21, cycle.start, SOURCE)

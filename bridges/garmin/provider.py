"""Garmin's push deliveries: authenticity without a signature, and the mapping to readings.

Garmin signs nothing (no HMAC, no timestamp; open-wearables only checks that a ``garmin-client-id`` header
exists, which anyone can send). So a delivery must pass two checks that a forger cannot:

1. **A secret path segment**: Garmin is configured to post to ``/v1/webhooks/garmin/<secret>``; the segment is
   compared in constant time with ``RHYTHM_GARMIN_WEBHOOK_PATH_SECRET``. It never reaches storage or logs (the
   access log records the route template, the inbox drops the pseudo-header carrying it).
2. **The user's known Garmin id**: every record names a ``userId``, and only records whose ``userId`` is a
   stored Garmin connection become readings (the worker resolves it); a body about anyone else is stored for
   the operators but writes nothing.

Without a timestamp there is no freshness window: a replay within the secret is stopped by the inbox's dedupe
key, the set of ``summaryId`` values the delivery carries, and a replayed summary upserts the same values.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self

from pydantic import SecretStr

from bridges.garmin.schemas import GarminPush
from bridges.meters.signals import RawReading, SignalKind, Unit
from bridges.webhooks import (
    PATH_SECRET_HEADER,
    ConnectionAction,
    ConnectionChange,
    Headers,
    SignatureError,
    UserRef,
    WebhookProvider,
    parse_model,
    register_provider,
    same_secret,
)

SOURCE = "garmin"


class GarminSettings(Protocol):
    @property
    def garmin_webhook_path_secret(self) -> SecretStr: ...


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@register_provider
class GarminProvider(WebhookProvider[GarminPush]):
    source = "garmin"

    def __init__(self, path_secret: str) -> None:
        self._path_secret = path_secret

    @classmethod
    def from_settings(cls, settings: Any) -> Self | None:
        configured: GarminSettings = settings
        secret = configured.garmin_webhook_path_secret.get_secret_value()
        return cls(secret) if secret else None

    def verify(self, headers: Headers, body: bytes, now: datetime) -> None:
        given = headers.get(PATH_SECRET_HEADER)
        if not given or not same_secret(self._path_secret, given):
            raise SignatureError("wrong or missing path secret")

    def parse(self, headers: Headers, body: bytes) -> GarminPush:
        return parse_model(body, GarminPush, "Garmin push")

    def external_id(self, headers: Headers, payload: GarminPush) -> str:
        keys = sorted(
            f"{kind}/{record.summaryId}"
            for kind, records in (
                ("dailies", payload.dailies),
                ("sleeps", payload.sleeps),
                ("hrv", payload.hrv),
            )
            for record in records
        )
        keys += sorted(f"deregistration/{record.userId}" for record in payload.deregistrations)
        keys += payload.other_types
        return "summaries:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()

    def user_ref(self, payload: GarminPush) -> UserRef:
        users = sorted(self._by_user(payload))
        return UserRef(external_user_id=users[0] if len(users) == 1 else None)

    def connection_change(self, payload: GarminPush) -> ConnectionChange | None:
        # A deregistration is the user withdrawing consent at Garmin: the connection is revoked. Garmin sends
        # them one user at a time; a batch of several is handled per user by the operators (stays visible).
        if len(payload.deregistrations) == 1 and not self._by_user(payload):
            user = UserRef(external_user_id=payload.deregistrations[0].userId)
            return ConnectionChange(ConnectionAction.UNLINK, user)
        return None

    def to_readings(self, payload: GarminPush) -> list[RawReading]:
        return [reading for _, readings in self.readings_by_user(payload) for reading in readings]

    def readings_by_user(self, payload: GarminPush) -> list[tuple[UserRef, list[RawReading]]]:
        return [
            (UserRef(external_user_id=user), readings) for user, readings in self._by_user(payload).items()
        ]

    def _by_user(self, payload: GarminPush) -> dict[str, list[RawReading]]:
        grouped: dict[str, list[RawReading]] = defaultdict(list)
        for daily in payload.dailies:
            at = _at(daily.startTimeInSeconds)
            for kind, value, unit in (
                (SignalKind.STEPS, daily.steps, Unit.COUNT),
                (SignalKind.RESTING_HEART_RATE, daily.restingHeartRateInBeatsPerMinute, Unit.BPM),
                # Firstbeat stress 0-100 (reference §2.3); -1 ("not enough data") is rejected downstream.
                (SignalKind.STRESS_SCORE, daily.averageStressLevel, Unit.SCORE),
            ):
                if value is not None:
                    grouped[daily.userId].append(RawReading(kind, value, unit, at, SOURCE))
        for sleep in payload.sleeps:
            # A night belongs to the morning it ends in.
            at = _at(sleep.startTimeInSeconds) + timedelta(seconds=sleep.durationInSeconds or 0)
            score = sleep.overallSleepScore or (sleep.sleepScores.overall if sleep.sleepScores else None)
            deep, light, rem = (
                sleep.deepSleepDurationInSeconds,
                sleep.lightSleepDurationInSeconds,
                sleep.remSleepInSeconds,
            )
            for kind, value, unit in (
                (SignalKind.SLEEP_DURATION, sleep.durationInSeconds, Unit.SECOND),
                (SignalKind.SLEEP_DEEP, deep, Unit.SECOND),
                (SignalKind.SLEEP_LIGHT, light, Unit.SECOND),
                (SignalKind.SLEEP_REM, rem, Unit.SECOND),
                (SignalKind.SLEEP_AWAKE, sleep.awakeDurationInSeconds, Unit.SECOND),
                (SignalKind.SLEEP_SCORE, score.value if score else None, Unit.SCORE),
            ):
                if value is not None:
                    grouped[sleep.userId].append(RawReading(kind, value, unit, at, SOURCE))
            if deep is not None and light is not None and rem is not None and deep + light + rem > 0:
                share = 100.0 * deep / (deep + light + rem)
                grouped[sleep.userId].append(
                    RawReading(SignalKind.DEEP_SLEEP_PERCENT, share, Unit.PERCENT, at, SOURCE)
                )
        for hrv in payload.hrv:
            if hrv.lastNightAvg is not None:
                # Garmin's overnight HRV is RMSSD-based.
                at = _at(hrv.startTimeInSeconds) + timedelta(seconds=hrv.durationInSeconds or 0)
                grouped[hrv.userId].append(
                    RawReading(SignalKind.HRV_RMSSD, hrv.lastNightAvg, Unit.MILLISECOND, at, SOURCE)
                )
        return dict(grouped)

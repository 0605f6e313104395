"""What WHOOP would send and serve for a simulated person: signed ``sleep.updated`` and
``recovery.updated`` notifications that name the night's sleep, and the three documents the worker then
reads (``/v2/activity/sleep/{id}``, ``/v2/cycle/{id}/recovery``, ``/v2/cycle/{id}``), registered on the
local provider API (:class:`app.benchmarks.provider_api.RecordApi`) with that person's access token.

The documents carry the person's observed signals (``sim.observe``): sleep stages and duration, the sleep
score as WHOOP's sleep performance, RMSSD and resting HR in the recovery. WHOOP's own composites (the
recovery score and the day's strain) are not something the observation model produces, so they are sent as
null, which the documented schema allows; stress and steps have no WHOOP field and are not sent.

The signature's timestamp is the real clock; only the data's own times are simulated.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.benchmarks.provider_api import RecordApi
from bridges.whoop.provider import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from sim.observe import DayObservation

SOURCE = "whoop"
PATH = "/v1/webhooks/whoop"


@dataclass(frozen=True)
class Delivery:
    """One signed notification; ``trace`` is its ``trace_id`` (the inbox's dedupe key, ``trace:<id>``)."""

    kind: str
    user_id: uuid.UUID
    body: bytes
    trace: str
    source: str = SOURCE
    path: str = PATH

    def headers(self, secret: str) -> dict[str, str]:
        # Signed when sent, not when built: a retry after an API restart must still be inside the window.
        timestamp_ms = int(time.time() * 1000)
        return {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(secret, timestamp_ms, self.body),
            TIMESTAMP_HEADER: str(timestamp_ms),
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class WhoopWorld:
    """The WHOOP side of a run: each linked person's WHOOP user id and access token, and the API serving
    their records. Ids are drawn per run so runs against one database never collide."""

    api: RecordApi
    users: dict[uuid.UUID, tuple[int, str]] = field(default_factory=dict)  # ours -> (WHOOP id, token)
    _next_cycle: int = field(default_factory=lambda: 100_000_000 + secrets.randbelow(10**9))
    _user_base: int = field(default_factory=lambda: 10_000_000 + secrets.randbelow(10**9))

    def add(self, user_id: uuid.UUID) -> tuple[int, str]:
        whoop_id = self._user_base + len(self.users)
        self.users[user_id] = (whoop_id, f"sim-access-{secrets.token_hex(12)}")
        return self.users[user_id]

    def morning(self, user_id: uuid.UUID, obs: DayObservation, i: int, day_start: datetime) -> list[Delivery]:
        """Last night's sleep for person ``i`` (nothing on a night without a record): its three documents
        registered, and the two notifications that name it."""
        if not bool(obs.has_sleep[i]):
            return []
        whoop_id, token = self.users[user_id]
        sleep_id = str(uuid.uuid4())
        cycle = self._next_cycle
        self._next_cycle += 1
        woke = day_start + timedelta(hours=7)
        asleep_ms = round(float(obs.asleep_s[i]) * 1000)
        awake_ms = round(float(obs.awake_s[i]) * 1000)
        start = woke - timedelta(milliseconds=asleep_ms + awake_ms)
        scored = woke + timedelta(minutes=10)
        sleep = {
            "id": sleep_id,
            "cycle_id": cycle,
            "v1_id": None,
            "user_id": whoop_id,
            "created_at": _iso(scored),
            "updated_at": _iso(scored),
            "start": _iso(start),
            "end": _iso(woke),
            "timezone_offset": "+00:00",
            "nap": False,
            "score_state": "SCORED",
            "score": {
                "stage_summary": {
                    "total_in_bed_time_milli": asleep_ms + awake_ms,
                    "total_awake_time_milli": awake_ms,
                    "total_no_data_time_milli": 0,
                    "total_light_sleep_time_milli": round(float(obs.light_s[i]) * 1000),
                    "total_slow_wave_sleep_time_milli": round(float(obs.deep_s[i]) * 1000),
                    "total_rem_sleep_time_milli": round(float(obs.rem_s[i]) * 1000),
                    "sleep_cycle_count": 4,
                    "disturbance_count": 8,
                },
                "respiratory_rate": 15.0,
                "sleep_performance_percentage": round(float(obs.sleep_score[i])),
                "sleep_consistency_percentage": None,
                "sleep_efficiency_percentage": None,
            },
        }
        recovery = {
            "cycle_id": cycle,
            "sleep_id": sleep_id,
            "user_id": whoop_id,
            "created_at": _iso(scored),
            "updated_at": _iso(scored),
            "score_state": "SCORED",
            "score": {
                "user_calibrating": False,
                "recovery_score": None,
                "resting_heart_rate": round(float(obs.resting_hr_bpm[i]), 1),
                "hrv_rmssd_milli": round(float(obs.rmssd_ms[i]), 2),
                "spo2_percentage": None,
                "skin_temp_celsius": None,
            },
        }
        day = {
            "id": cycle,
            "user_id": whoop_id,
            "created_at": _iso(start),
            "updated_at": _iso(scored),
            "start": _iso(start),
            "end": None,  # the current cycle is open until the next sleep starts
            "timezone_offset": "+00:00",
            "score_state": "SCORED",
            "score": {"strain": None, "kilojoule": None, "average_heart_rate": None, "max_heart_rate": None},
        }
        self.api.register(f"/v2/activity/sleep/{sleep_id}", token, sleep)
        self.api.register(f"/v2/cycle/{cycle}/recovery", token, recovery)
        self.api.register(f"/v2/cycle/{cycle}", token, day)
        out = []
        # WHOOP sends both when a night is scored: the worker reads the sleep's stages on ``sleep.updated``
        # and the recovery and cycle on ``recovery.updated`` (each reads the sleep first).
        for kind in ("sleep.updated", "recovery.updated"):
            trace = str(uuid.uuid4())
            document = {"user_id": whoop_id, "id": sleep_id, "type": kind, "trace_id": trace}
            out.append(Delivery(kind, user_id, json.dumps(document).encode(), trace))
        return out


class RegisteredRecords:
    """``bridges.webhooks.ProviderApi`` over the registered documents: the simulation runs the bridge's own
    ``fetch_readings`` on them to know which readings the service should store."""

    def __init__(self, api: RecordApi) -> None:
        self._api = api

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        record = self._api.records.get(path)
        return None if record is None else record[1]

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        raise NotImplementedError("WHOOP's mapping reads with get_json only")


def link(sync_url: str, secret_key: str, world: WhoopWorld) -> None:
    """Store a WHOOP connection with encrypted tokens for every person in ``world`` (as the OAuth callback
    would after consent); the workers decrypt them with the same ``RHYTHM_SECRET_KEY``."""
    from app.core.db import task_session
    from app.models import DeviceConnection
    from bridges.connections import TokenSet, cipher_for, write_tokens

    cipher = cipher_for(secret_key)
    # Valid for the whole run: the outage is what is under test, not token refreshes.
    expires = datetime.now(UTC) + timedelta(days=1)
    with task_session(sync_url) as session:
        for user_id, (whoop_id, token) in world.users.items():
            connection = DeviceConnection(user_id=user_id, provider=SOURCE, external_user_id=str(whoop_id))
            write_tokens(connection, TokenSet(token, f"sim-refresh-{whoop_id}", expires, "read"), cipher)
            session.add(connection)

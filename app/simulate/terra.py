"""What Terra would push for a simulated person: the documented ``auth``, ``sleep`` and ``daily`` envelopes,
serialised once and signed over those exact bytes as Terra signs them (``bridges.terra.provider.sign``).

The signature's timestamp is the real clock (the service checks it within 300 s); only the data's own times
(``metadata.start_time`` / ``end_time``) are simulated.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bridges.terra.provider import SIGNATURE_HEADER, TRACE_HEADER, sign
from sim.observe import DayObservation

PROVIDER = "OURA"
VERSION = "2022-03-16"


@dataclass(frozen=True)
class Delivery:
    """One signed push: its body bytes, headers and trace id (the inbox's dedupe key)."""

    kind: str
    user_id: uuid.UUID
    body: bytes
    trace: str
    source: str = "terra"
    path: str = "/v1/webhooks/terra"

    def headers(self, secret: str) -> dict[str, str]:
        # Signed when sent, not when built: a retry after an API restart must still be inside the window.
        timestamp = int(time.time())
        return {
            "content-type": "application/json",
            SIGNATURE_HEADER: f"t={timestamp},v1={sign(secret, timestamp, self.body)}",
            TRACE_HEADER: self.trace,
        }


def terra_user_id(user_id: uuid.UUID) -> str:
    return f"sim-{user_id.hex[:16]}"


def _user(user_id: uuid.UUID) -> dict[str, Any]:
    return {
        "user_id": terra_user_id(user_id),
        "provider": PROVIDER,
        "reference_id": str(user_id),
        "scopes": None,
        "last_webhook_update": None,
    }


def _delivery(kind: str, user_id: uuid.UUID, document: dict[str, Any]) -> Delivery:
    return Delivery(kind, user_id, json.dumps(document).encode(), uuid.uuid4().hex)


def auth(user_id: uuid.UUID) -> Delivery:
    """The widget's ``auth`` event: ``reference_id`` = our user id links the Terra user to ours."""
    document = {
        "type": "auth",
        "user": _user(user_id),
        "status": "success",
        "reference_id": str(user_id),
        "widget_session_id": uuid.uuid4().hex,
        "version": VERSION,
    }
    return _delivery("auth", user_id, document)


def morning(user_id: uuid.UUID, obs: DayObservation, i: int, day_start: datetime) -> list[Delivery]:
    """The night that ended this morning (``sleep``) and today's first ``daily`` summary for person ``i``.

    ``day_start`` is local midnight of the simulated day. The daily summary is keyed by the day's start (as
    Terra keys it), so its values serve the rest of the day.
    """
    out: list[Delivery] = []
    if bool(obs.has_sleep[i]):
        woke = day_start + timedelta(hours=7)
        asleep = float(obs.asleep_s[i]) + float(obs.awake_s[i])
        sleep = {
            "type": "sleep",
            "user": _user(user_id),
            "version": VERSION,
            "data": [
                {
                    "metadata": {
                        "start_time": (woke - timedelta(seconds=asleep)).isoformat(),
                        "end_time": woke.isoformat(),
                        "upload_type": 1,
                    },
                    "sleep_durations_data": {
                        "asleep": {
                            "duration_asleep_state_seconds": round(float(obs.asleep_s[i])),
                            "duration_deep_sleep_state_seconds": round(float(obs.deep_s[i])),
                            "duration_light_sleep_state_seconds": round(float(obs.light_s[i])),
                            "duration_REM_sleep_state_seconds": round(float(obs.rem_s[i])),
                        },
                        "awake": {"duration_awake_state_seconds": round(float(obs.awake_s[i]))},
                    },
                    "heart_rate_data": {"summary": {"avg_hrv_rmssd": round(float(obs.rmssd_ms[i]), 2)}},
                    "data_enrichment": {"sleep_score": round(float(obs.sleep_score[i]))},
                }
            ],
        }
        out.append(_delivery("sleep", user_id, sleep))
    if bool(obs.has_daily[i]):
        daily = {
            "type": "daily",
            "user": _user(user_id),
            "version": VERSION,
            "data": [
                {
                    "metadata": {
                        "start_time": day_start.isoformat(),
                        "end_time": (day_start + timedelta(days=1)).isoformat(),
                        "upload_type": 1,
                    },
                    "heart_rate_data": {
                        "summary": {"resting_hr_bpm": round(float(obs.resting_hr_bpm[i]), 1)},
                    },
                    "stress_data": {"avg_stress_level": round(float(obs.stress[i]))},
                    "distance_data": {"steps": int(obs.steps[i])},
                }
            ],
        }
        out.append(_delivery("daily", user_id, daily))
    return out

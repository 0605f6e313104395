"""Phone uploads: Health Auto Export's Apple Health JSON (HealthKit HRV is SDNN) and typed signal readings;
strict types, the one error shape, idempotent re-uploads, readings scoped to the caller."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from app.core.config import Settings
from app.core.db import task_session
from app.models import SignalReading
from bridges.meters import Reading, SignalKind, estimate_meters
from domain import Meter
from tests.wearables.support import NewUser, readings

APPLE = "/v1/ingest/apple-health"
SIGNALS = "/v1/ingest/signals"
NOW = datetime.now(UTC).replace(microsecond=0)


def hae_date(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


def export(hrv: list[tuple[datetime, float]], **extra_metrics: Any) -> dict[str, Any]:
    return {
        "data": {
            "metrics": [
                {
                    "name": "heart_rate_variability",
                    "units": "ms",
                    "data": [
                        {"qty": value, "date": hae_date(at), "source": "Apple Watch"} for at, value in hrv
                    ],
                },
                *extra_metrics.values(),
            ],
            "workouts": [],
        }
    }


async def test_apple_health_export_becomes_readings_once(
    wclient: httpx.AsyncClient, new_user: NewUser, wearables: Settings
) -> None:
    user_id, headers = await new_user()
    morning = NOW.replace(hour=7, minute=0, second=0) - timedelta(days=1)
    body = export(
        [(morning, 62.5)],
        rhr={
            "name": "resting_heart_rate",
            "units": "count/min",
            "data": [{"qty": 51, "date": hae_date(morning)}],
        },
        steps={"name": "step_count", "units": "count", "data": [{"qty": 10412, "date": hae_date(morning)}]},
        sleep={
            "name": "sleep_analysis",
            "units": "hr",
            "data": [
                {
                    "date": hae_date(morning),
                    "totalSleep": 7.25,
                    "core": 4.0,
                    "deep": 1.25,
                    "rem": 2.0,
                    "awake": 0.5,
                    "sleepEnd": hae_date(morning),
                }
            ],
        },
        mood={"name": "mindful_minutes", "units": "min", "data": [{"qty": 10, "date": hae_date(morning)}]},
    )

    first = await wclient.post(APPLE, json=body, headers=headers)
    again = await wclient.post(APPLE, json=body, headers=headers)

    assert first.status_code == 200, first.text
    assert first.json() == {
        "received": 9,
        "written": 9,
        "rejected": [],
        "ignored_metrics": ["mindful_minutes"],
    }
    assert again.json()["written"] == 0
    stored = {
        kind: value for source, kind, value, _ in readings(wearables, user_id) if source == "apple_health"
    }
    # HealthKit's HRV is SDNN: never stored as RMSSD.
    assert stored["hrv_sdnn"] == 62.5 and "hrv_rmssd" not in stored
    assert stored["resting_heart_rate"] == 51.0 and stored["steps"] == 10412.0
    assert stored["sleep_duration"] == 435.0 and stored["sleep_deep"] == 75.0
    assert stored["deep_sleep_percent"] == round(100 * 1.25 / 7.25, 3)


async def test_apple_health_keeps_the_good_readings_and_names_the_bad(
    wclient: httpx.AsyncClient, new_user: NewUser, wearables: Settings
) -> None:
    user_id, headers = await new_user()
    body = export([(NOW - timedelta(hours=3), 48.0), (NOW - timedelta(hours=2), 900.0)])
    body["data"]["metrics"][0]["data"].append({"qty": 50.0, "date": "yesterday"})

    response = await wclient.post(APPLE, json=body, headers=headers)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["written"] == 1
    assert [(item["index"], item["code"]) for item in result["rejected"]] == [
        (1, "out_of_range"),
        (2, "bad_date"),
    ]
    assert [kind for _, kind, _, _ in readings(wearables, user_id)] == ["hrv_sdnn"]


async def test_apple_health_dates_out_of_the_time_bound_are_rejected_not_a_500(
    wclient: httpx.AsyncClient, new_user: NewUser, wearables: Settings
) -> None:
    """Year 1 or 9999 with an offset overflowed the conversion to UTC (a 500); a date years away is bounded
    like every timestamp the API accepts (RHYTHM_MAX_CLOCK_SKEW, issue 10): each such reading is rejected
    by name, the good ones are kept."""
    user_id, headers = await new_user()
    body = export([(NOW - timedelta(hours=3), 48.0)])
    points = body["data"]["metrics"][0]["data"]
    points += [
        {"qty": 50.0, "date": "0001-01-01 00:00:00 +0100"},
        {"qty": 50.0, "date": "9999-12-31 23:59:59 -0100"},
        {"qty": 50.0, "date": hae_date(NOW - timedelta(days=400))},
    ]
    night = {"totalSleep": 7.0, "core": 4.0, "deep": 1.0, "rem": 2.0}
    body["data"]["metrics"].append(
        {
            "name": "sleep_analysis",
            "units": "hr",
            "data": [
                {**night, "date": "0001-01-01 00:00:00 +0100"},
                {**night, "date": hae_date(NOW), "sleepEnd": "9999-12-31 23:59:59 -0100"},
            ],
        }
    )

    response = await wclient.post(APPLE, json=body, headers=headers)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["received"] == 4 + 2 * 5
    assert result["written"] == 1
    rejected = result["rejected"]
    assert [item["index"] for item in rejected] == list(range(1, 14))
    assert {item["code"] for item in rejected} == {"time_out_of_range"}
    assert "365" in rejected[0]["reason"]
    assert [kind for _, kind, _, _ in readings(wearables, user_id)] == ["hrv_sdnn"]


async def test_apple_health_refuses_a_number_sent_as_a_string(
    wclient: httpx.AsyncClient, new_user: NewUser
) -> None:
    _, headers = await new_user()
    body = export([(NOW, 50.0)])
    body["data"]["metrics"][0]["data"][0]["qty"] = "50"
    response = await wclient.post(APPLE, json=body, headers=headers)
    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"


async def test_signals_are_stored_for_the_caller_and_resending_changes_nothing(
    wclient: httpx.AsyncClient, new_user: NewUser, wearables: Settings
) -> None:
    user_id, headers = await new_user()
    other_id, other_headers = await new_user()
    at = (NOW - timedelta(hours=1)).isoformat()
    batch = {
        "readings": [
            {"kind": "messages_sent", "value": 42, "observed_at": at},
            {"kind": "sleep_duration", "value": 7.5, "unit": "h", "observed_at": at},
        ]
    }

    first = await wclient.post(SIGNALS, json=batch, headers=headers)
    again = await wclient.post(SIGNALS, json=batch, headers=headers)
    batch["readings"][0]["value"] = 43
    changed = await wclient.post(SIGNALS, json=batch, headers=headers)

    assert first.status_code == 200, first.text
    assert [r.json()["written"] for r in (first, again, changed)] == [2, 0, 1]
    assert {(kind, value) for _, kind, value, _ in readings(wearables, user_id)} == {
        ("messages_sent", 43.0),
        ("sleep_duration", 450.0),
    }
    assert readings(wearables, other_id) == []
    assert (await wclient.post(SIGNALS, json=batch, headers=other_headers)).json()["written"] == 2


async def test_invalid_signal_batches_are_422_in_the_one_shape_and_store_nothing(
    wclient: httpx.AsyncClient, new_user: NewUser, wearables: Settings
) -> None:
    user_id, headers = await new_user()
    at = NOW.isoformat()
    good = {"kind": "steps", "value": 5000, "observed_at": at}
    cases = {
        "out of range": [good, {"kind": "resting_heart_rate", "value": 400, "observed_at": at}],
        "string number": [{"kind": "steps", "value": "5000", "observed_at": at}],
        "unknown kind": [{"kind": "mood", "value": 1, "observed_at": at}],
        "a client-supplied user id": [{**good, "user_id": str(uuid.uuid4())}],
        "naive time": [{"kind": "steps", "value": 1, "observed_at": "2026-12-01T08:00:00"}],
        "wrong unit": [{"kind": "steps", "value": 1, "unit": "ms", "observed_at": at}],
    }
    for case, items in cases.items():
        response = await wclient.post(SIGNALS, json={"readings": items}, headers=headers)
        assert response.status_code == 422, (case, response.text)
        assert set(response.json()["error"]) == {"code", "message", "details"}, case
    out_of_range = await wclient.post(SIGNALS, json={"readings": cases["out of range"]}, headers=headers)
    [detail] = out_of_range.json()["error"]["details"]
    assert (detail["index"], detail["kind"], detail["code"]) == (1, "resting_heart_rate", "out_of_range")
    assert readings(wearables, user_id) == []


async def test_uploads_need_a_user_token_and_respect_the_body_cap(
    wclient: httpx.AsyncClient, new_user: NewUser, wearables: Settings
) -> None:
    _, headers = await new_user()
    batch = {"readings": [{"kind": "steps", "value": 1, "observed_at": NOW.isoformat()}]}
    assert (await wclient.post(SIGNALS, json=batch)).status_code == 401
    huge = b'{"readings": [' + b" " * (wearables.max_body_bytes + 1) + b"]}"
    response = await wclient.post(
        SIGNALS, content=huge, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"]["code"]


async def test_apple_sdnn_never_shifts_the_rmssd_baseline(
    wclient: httpx.AsyncClient, new_user: NewUser, wearables: Settings
) -> None:
    user_id, headers = await new_user()
    days = [NOW.replace(hour=6, minute=0, second=0) - timedelta(days=d) for d in range(1, 21)]
    rmssd = [
        {"kind": "hrv_rmssd", "value": 40 + (d % 5), "observed_at": at.isoformat()}
        for d, at in enumerate(days)
    ]
    assert (await wclient.post(SIGNALS, json={"readings": rmssd}, headers=headers)).status_code == 200
    before = _rmssd_input(wearables, user_id)

    # SDNN from the watch on the same mornings, at a scale that would drag an RMSSD baseline far up.
    sdnn = export([(at, 110.0 + d) for d, at in enumerate(days)])
    assert (await wclient.post(APPLE, json=sdnn, headers=headers)).json()["written"] == len(days)
    after = _rmssd_input(wearables, user_id)

    assert after.baseline == before.baseline and after.z == before.z


def _rmssd_input(settings: Settings, user_id: uuid.UUID):  # type: ignore[no-untyped-def]
    with task_session(settings.sync_database_url) as session:
        rows = session.scalars(select(SignalReading).where(SignalReading.user_id == user_id)).all()
        stored = [
            Reading(SignalKind(r.kind), r.value, SignalKind(r.kind).unit, r.observed_at, r.source)
            for r in rows
        ]
    report = estimate_meters(stored, NOW)
    inputs = [i for meter in Meter for i in report[meter].inputs if i.kind is SignalKind.HRV_RMSSD]
    assert inputs, "the RMSSD history should feed a meter"
    return inputs[0]

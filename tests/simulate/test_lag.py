"""The queue-lag figures of ``rhythm simulate``'s report, from rows shaped as the ops API returns them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.simulate.lag import queue_lag, stats

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _event(source: str, received_s: float, handled_s: float | None) -> dict[str, object]:
    handled = None if handled_s is None else (T0 + timedelta(seconds=handled_s)).isoformat()
    return {
        "source": source,
        "received_at": (T0 + timedelta(seconds=received_s)).isoformat(),
        "handled_at": handled,
    }


def test_webhook_lag_is_per_source_and_skips_unhandled_events() -> None:
    inbox = [
        _event("terra", 0.0, 0.5),
        _event("terra", 10.0, 11.5),
        _event("terra", 20.0, None),  # not handled yet: the books count it, the lag cannot
        _event("google-calendar", 5.0, 65.0),
    ]
    lag = queue_lag(inbox, [])["webhooks_received_to_handled"]
    assert set(lag) == {"terra", "google-calendar"}
    assert lag["terra"]["n"] == 2
    assert lag["terra"]["p50_s"] == pytest.approx(1.0)
    assert lag["terra"]["max_s"] == pytest.approx(1.5)
    assert lag["google-calendar"] == {"n": 1, "p50_s": 60.0, "p95_s": 60.0, "p99_s": 60.0, "max_s": 60.0}


def test_finetune_waits_and_runs_come_from_the_job_timestamps() -> None:
    jobs: list[dict[str, Any]] = [
        {
            "created_at": T0,
            "started_at": T0 + timedelta(seconds=2),
            "finished_at": T0 + timedelta(seconds=47),
        },
        {"created_at": T0, "started_at": T0 + timedelta(seconds=50), "finished_at": None},  # still running
        {"created_at": T0, "started_at": None, "finished_at": None},  # queued
    ]
    lag = queue_lag([], jobs)
    assert lag["finetune_created_to_started"]["n"] == 2
    assert lag["finetune_created_to_started"]["max_s"] == pytest.approx(50.0)
    assert lag["finetune_started_to_finished"] == stats([45.0])
    assert lag["webhooks_received_to_handled"] == {}


def test_no_durations_give_no_figures() -> None:
    assert stats([]) == {"n": 0, "p50_s": None, "p95_s": None, "p99_s": None, "max_s": None}
    assert stats([3.0, 1.0, 2.0])["p50_s"] == pytest.approx(2.0)

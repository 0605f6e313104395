"""``rhythm bench webhooks`` runs end to end at a tiny size (real uvicorn servers, a temporary Postgres
database, the Redis broker under a private key prefix, a real Celery worker) and its books balance. No timing
is asserted: speed is what the benchmark reports, not what a test checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app.benchmarks.provider_api import WhoopApi
from app.cli import app
from tests.support import broker_url, server_url

pytestmark = pytest.mark.slow


def test_bench_webhooks_accepts_drains_and_counts_every_delivery_once(tmp_path: Path) -> None:
    plot = tmp_path / "webhooks.png"
    result = CliRunner().invoke(
        app,
        [
            "bench", "webhooks", "--json", "--requests", "12", "--deliveries", "30", "--concurrency", "2",
            "--users", "3", "--database", server_url(), "--broker", broker_url(), "--plot", str(plot),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for server in ("bare", "provider"):
        row = report["accept"][server]
        assert row["requests"] == 12 and row["errors"] == 0
        assert row["throughput_rps"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert report["ratio"]["provider_over_bare_throughput"] > 0
    drain = report["drain"]
    # 4 warm-up + 12 timed deliveries, topped up to 30; each handled exactly once, four readings each.
    assert drain["deliveries"] == 30 and drain["handled"] == 30 and drain["handled_exactly_once"] == 30
    assert drain["lost"] == 0 and drain["readings"] == drain["readings_expected"] == 120
    assert drain["readings_duplicated"] == 0 and drain["books_balance"] is True
    assert drain["meter_snapshots"] >= 3  # each of the 3 users got at least one recompute
    assert drain["events_per_s_per_worker"] > 0
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_webhooks_whoop_drain_fetches_each_notified_record_exactly_once() -> None:
    # WHOOP is notify-only: each recovery.updated delivery makes the worker GET its sleep, the cycle's
    # recovery and the cycle from the benchmark's local provider API, with the user's token.
    result = CliRunner().invoke(
        app,
        [
            "bench", "webhooks", "--json", "--provider", "whoop", "--requests", "4", "--deliveries", "10",
            "--concurrency", "1", "--users", "2", "--database", server_url(), "--broker", broker_url(),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["settings"]["path"] == "/v1/webhooks/whoop"
    assert report["accept"]["provider"]["errors"] == 0 and report["accept"]["bare"]["errors"] == 0
    drain = report["drain"]
    # 2 warm-up + 4 timed deliveries, topped up to 10; four readings each (recovery, RHR, RMSSD, strain).
    assert drain["deliveries"] == 10 and drain["handled"] == 10 and drain["handled_exactly_once"] == 10
    assert drain["lost"] == 0 and drain["failed"] == 0
    assert drain["readings"] == drain["readings_expected"] == 40 and drain["readings_duplicated"] == 0
    fetches = drain["fetch_after_notify"]
    assert fetches["gets"] == fetches["gets_expected"] == 30 and fetches["answers"] == {"200": 30}
    assert fetches["paths_fetched_once"] == 30 and fetches["gets_outside_the_deliveries"] == 0
    assert fetches["each_delivery_fetched_exactly_once"] is True and drain["books_balance"] is True


def test_the_local_provider_api_refuses_another_users_token_and_ids_it_never_handed_out() -> None:
    api = WhoopApi(salt=7, today=datetime(2026, 12, 3, tzinfo=UTC))
    api.tokens = ["token-0", "token-1"]
    sleep, recovery, cycle = api.paths_of(3)  # delivery 3 belongs to user 1
    with api.serving() as server, httpx.Client(base_url=server.url) as http:
        assert http.get(sleep, headers={"Authorization": "Bearer token-0"}).status_code == 401
        answer = http.get(recovery, headers={"Authorization": "Bearer token-1"})
        assert answer.status_code == 200 and answer.json()["sleep_id"] == api.sleep_id(3)
        foreign = WhoopApi(salt=8, today=api.today).paths_of(3)[0]
        assert http.get(foreign, headers={"Authorization": "Bearer token-1"}).status_code == 404
        books = api.fetch_books(4)
    # Delivery 3's sleep got a 401 and its recovery a 200 (one GET each), its cycle none; with the foreign
    # GET outside any delivery, the books do not balance.
    assert books["gets"] == 3 and books["answers"] == {"200": 1, "401": 1, "404": 1}
    assert books["paths_fetched_once"] == 2 and books["paths_never_fetched"] == 10
    assert books["gets_outside_the_deliveries"] == 1 and books["each_delivery_fetched_exactly_once"] is False
    assert cycle.endswith(str(WhoopApi.CYCLE_BASE + 3))

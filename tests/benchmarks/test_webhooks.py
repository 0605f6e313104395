"""``rhythm bench webhooks`` runs end to end at a tiny size (real uvicorn servers, a temporary Postgres
database, the Redis broker under a private key prefix, a real Celery worker) and its books balance. No timing
is asserted: speed is what the benchmark reports, not what a test checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

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

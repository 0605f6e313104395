"""``rhythm bench api`` runs end to end (real uvicorn processes, a temporary Postgres database) and reports
every figure. No timing is asserted: speed is what the benchmark reports, not what a test checks."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.support import server_url

pytestmark = pytest.mark.slow


def test_bench_api_reports_throughput_latency_and_ratios() -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench", "api", "--json", "--requests", "20", "--concurrency", "1,2",
            "--modes", "instant,bare", "--database", server_url(),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for mode in ("instant", "bare"):
        for clients in ("1", "2"):
            row = report["results"][mode][clients]
            assert row["requests"] >= 20 and row["errors"] == 0
            assert row["throughput_rps"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert report["ratios"]["2"]["instant_over_bare_throughput"] > 0
    assert set(report["ratios"]["targets"]) >= {"p99_met", "throughput_ratio_met"}

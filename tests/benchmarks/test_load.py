"""``rhythm bench load`` end to end on a tiny load: real uvicorn servers, the generator process, a temporary
Postgres database and Redis. Nothing about speed is asserted; what is checked is that every figure is
computed from the answers the servers really gave (counts add up, rows in the tables match the 2xx answers,
and refused requests are counted as errors)."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.benchmarks.api import METERS, _seed, temporary_database, uvicorn_server
from app.benchmarks.load import EXPECTED_STATUS, load_generator
from app.cli import app
from tests.support import broker_url, server_url

pytestmark = pytest.mark.slow


def test_bench_load_figures_come_from_real_answers(tmp_path: Path) -> None:
    plot = tmp_path / "load.png"
    result = CliRunner().invoke(
        app,
        [
            "bench", "load", "--json", "--duration", "1", "--max-requests", "12", "--calibration", "8",
            "--warmup", "3", "--concurrency", "2", "--users", "3", "--utilisations", "0.3",
            "--cpu-rounds", "2", "--cpu-round-requests", "5",
            "--database", server_url(), "--broker", broker_url(), "--plot", str(plot),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["results"]) == {"bare", "recommend", "feedback", "webhooks"}
    for name, endpoint in report["results"].items():
        expected = str(EXPECTED_STATUS[name])
        for phase in (endpoint["calibration"], endpoint["open"]["0.3"]):
            # Every scheduled request ends in exactly one status, and ok/errors are read off those statuses.
            assert sum(phase["status_counts"].values()) == phase["scheduled"]
            assert phase["ok"] == phase["status_counts"].get(expected, 0)
            assert phase["ok"] + phase["errors"] == phase["scheduled"]
            assert phase["errors"] == 0, phase["status_counts"]
            assert phase["p50_ms"] <= phase["p99_ms"] <= phase["max_ms"]
        open_phase = endpoint["open"]["0.3"]
        assert open_phase["target_rps"] == pytest.approx(0.3 * endpoint["capacity_rps"])
        assert open_phase["scheduled"] == min(12, max(1, math.ceil(open_phase["target_rps"] * 1.0)))
    # The rows the service wrote are exactly the 2xx answers the generator counted (warm-up included).
    assert report["summary"]["books_balance"] == {"recommend": True, "feedback": True, "webhooks": True}
    interleaved = report["cpu_interleaved"]
    assert interleaved["recommend"]["ok"] == interleaved["bare"]["ok"] == 2 * 5
    assert len(interleaved["recommend"]["per_round_ms"]) == 2
    assert report["books"]["recommend"] == report["results"]["recommend"]["ok_total"] + 10
    rec, bare = report["results"]["recommend"]["open"]["0.3"], report["results"]["bare"]["open"]["0.3"]
    ratios = report["summary"]["recommend_over_bare_cpu"]
    if rec["server_cpu_ms_per_request"] and bare["server_cpu_ms_per_request"]:
        assert ratios["0.3"] == pytest.approx(
            rec["server_cpu_ms_per_request"] / bare["server_cpu_ms_per_request"]
        )
    targets = report["summary"]["targets"]
    assert set(targets) >= {"cpu_ratio_met", "cpu_ratio_verdict", "p99_met", "zero_errors_met"}
    assert targets["cpu_ratio_met"] == (targets["cpu_ratio_verdict"] == "met")
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_refused_requests_are_counted_as_errors() -> None:
    """A phase whose every request carries an unknown token: the server answers 401 and the report says so."""
    with temporary_database(server_url()) as url, tempfile.TemporaryDirectory() as tmp:
        users = asyncio.run(_seed(url, 2, 0))
        logs = Path(tmp)
        with (
            uvicorn_server("instant", url, logs / "server.log") as (base, pid),
            load_generator(logs / "generator.log") as generator,
        ):
            job = {
                "base": base, "endpoint": "recommend", "expected_status": 200, "mode": "open", "rate": 40.0,
                "count": 8, "arrivals": "uniform", "seed": 0, "timeout_s": 10.0, "meters": METERS,
                "users": [[str(u), t] for u, t in users],
            }  # fmt: skip
            good = generator.run(job, pid)
            refused = generator.run({**job, "token_override": "not-a-token-of-anyone"}, pid)
    assert good["status_counts"] == {"200": 8} and good["ok"] == 8 and good["errors"] == 0
    assert refused["status_counts"] == {"401": 8}
    assert refused["ok"] == 0 and refused["errors"] == 8
    assert refused["server_cpu_ms_per_request"] is None or refused["server_cpu_ms_per_request"] >= 0


def test_the_cpu_ratio_interval_is_a_t_interval_on_the_rounds_log_ratios() -> None:
    from app.benchmarks.load import ratio_interval

    assert ratio_interval([2.5]) is None
    assert ratio_interval([2.0, 2.0, 2.0]) == pytest.approx((2.0, 2.0))
    # Two rounds, 1 and 4: geometric mean 2, log sd ln 2 * sqrt 2, t(1) = 12.706.
    low, high = ratio_interval([1.0, 4.0]) or (0.0, 0.0)
    assert (low, high) == pytest.approx((2.0 * 2.0**-12.706, 2.0 * 2.0**12.706))
    # Ten rounds use t(9) = 2.262 and are symmetric around the geometric mean on the log scale.
    rounds = [1.7, 2.5, 1.9, 2.2, 2.8, 2.0, 1.6, 2.4, 2.1, 2.3]
    low, high = ratio_interval(rounds) or (0.0, 0.0)
    logs = [math.log(r) for r in rounds]
    half = 2.262 * statistics.stdev(logs) / math.sqrt(10)
    assert math.log(low) == pytest.approx(statistics.fmean(logs) - half)
    assert math.log(high) == pytest.approx(statistics.fmean(logs) + half)


@pytest.mark.parametrize(
    ("point", "interval", "verdict"),
    [
        (1.8, (1.6, 1.95), "met"),
        (1.9, (1.7, 2.2), "not shown"),
        (2.3, (2.1, 2.6), "missed"),
        (1.9, None, "met"),
        (2.1, None, "missed"),
        (None, None, "not shown"),
    ],
)
def test_the_cpu_target_is_met_only_when_the_whole_interval_is_below_it(
    point: float | None, interval: tuple[float, float] | None, verdict: str
) -> None:
    from app.benchmarks.load import ratio_verdict

    assert ratio_verdict(point, interval, 2.0) == verdict

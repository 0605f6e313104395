"""Benchmark metrics and the ``rhythm bench personalization`` command."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

from sim.bench import identification_by_behaviour
from sim.cli import MARK_END, MARK_START, bench_app
from sim.profiles import archetype_batch
from sim.rollout import Trajectories


def _trajectory(bad_steps: int, steps: int = 28) -> Trajectories:
    n = 1
    p_accept = np.zeros((n, steps, 10))
    p_accept[:, :, 0], p_accept[:, :, 1] = 0.8, 0.1
    actions = np.where(np.arange(steps) < bad_steps, 1, 0)[None, :]
    zeros = np.zeros((n, steps), dtype=np.int64)
    return Trajectories(
        zeros,
        zeros,
        np.zeros((n, steps, 5)),
        actions,
        zeros,
        np.zeros((n, steps, 10)),
        None,
        None,
        p_accept,
        zeros - 1,
        archetype_batch().take(slice(0, 1)),
    )


@pytest.mark.parametrize(
    ("bad", "expected"), [(0, 0.0), (5, 5.0), (20, 20.0), (21, math.inf), (28, math.inf)]
)
def test_identification_is_the_start_of_the_good_suffix(bad: int, expected: float) -> None:
    assert identification_by_behaviour(_trajectory(bad))[0] == expected


# The root ``rhythm`` app attaches bench_app as ``bench``; mount it the same way (a lone one-command Typer
# would collapse the sub-command).
_root = typer.Typer()
_root.add_typer(bench_app, name="bench")


def _bench(args: list[str]) -> Result:
    return CliRunner().invoke(_root, ["bench", *args])


def test_json_output_shape() -> None:
    result = _bench(
        [
            "personalization",
            "--policy",
            "random,bayes",
            "--profiles",
            "archetypes",
            "--users",
            "30",
            "--weeks",
            "2",
            "--seed",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == ["policies"]
    assert list(payload["policies"]) == ["random", "bayes"]
    for report in payload["policies"].values():
        assert len(report["acceptance_by_week"]) == 2
        assert all(0.0 <= a <= 1.0 for a in report["acceptance_by_week"])
        for key in ("regret", "identify_median", "identify_p90", "action_coverage", "acceptance_ci"):
            assert key in report
    assert payload["policies"]["bayes"]["belief_identify_median"] is not None
    assert payload["policies"]["random"]["regret"] > payload["policies"]["bayes"]["regret"]


def test_same_seed_same_numbers() -> None:
    args = ["personalization", "--policy", "thompson", "--users", "20", "--seed", "8", "--json"]
    first, second = (json.loads(_bench(args).stdout) for _ in range(2))
    for report in (first, second):
        report["policies"]["thompson"].pop("seconds")
    assert first == second


def test_bad_arguments_are_usage_errors() -> None:
    assert _bench(["personalization", "--profiles", "martians"]).exit_code == 2
    assert _bench(["personalization", "--policy", "nope", "--users", "5"]).exit_code == 2
    multi = ["personalization", "--profiles", "archetypes,ood", "--json", "--users", "5"]
    assert _bench(multi).exit_code == 2


def test_plot_and_markdown_block(tmp_path: Path) -> None:
    doc = tmp_path / "bench.md"
    doc.write_text(f"# Intro kept\n\n{MARK_START}\nold table\n{MARK_END}\n\nOutro kept\n")
    png = tmp_path / "curve.png"
    result = _bench(
        [
            "personalization",
            "--policy",
            "random,oracle",
            "--profiles",
            "archetypes,continuous",
            "--users",
            "10",
            "--plot",
            str(png),
            "--markdown",
            str(doc),
        ],
    )
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = doc.read_text()
    assert text.startswith("# Intro kept") and text.rstrip().endswith("Outro kept")
    assert "old table" not in text
    assert "#### Profiles: archetypes" in text and "#### Profiles: continuous" in text
    assert text.count("| oracle |") == 2


@pytest.mark.skipif(shutil.which("rhythm", path=str(Path(sys.executable).parent)) is None, reason="no script")
def test_rhythm_console_script_prints_only_json_on_stdout() -> None:
    rhythm = shutil.which("rhythm", path=str(Path(sys.executable).parent))
    assert rhythm is not None
    proc = subprocess.run(
        [rhythm, "bench", "personalization", "--policy", "heuristic", "--users", "10", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(proc.stdout)["policies"]["heuristic"]["acceptance_by_week"]

"""The calibration report and the exploration trade-off, on cheap simulator policies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from sim.calibration import calibration_report
from sim.cli import bench_app
from sim.exploration import product_of_experts, run_exploration, sharpen, snips
from sim.policies import make_policy
from sim.profiles import archetype_batch, sample_profiles
from sim.rollout import Trajectories

_root = typer.Typer()
_root.add_typer(bench_app, name="bench")


def _trajectory() -> Trajectories:
    # 1 user, 4 decisions; distribution puts 0.7 / 0.2 / 0.1 on actions 3 / 5 / 0.
    steps = 4
    probs = np.zeros((1, steps, 10))
    probs[:, :, 3], probs[:, :, 5], probs[:, :, 0] = 0.7, 0.2, 0.1
    p_accept = np.full((1, steps, 10), 0.05)
    p_accept[:, :, 3], p_accept[:, :, 5] = 0.8, 0.4
    actions = np.array([[3, 3, 5, 0]])
    responses = np.array([[0, 1, 0, 1]])  # accepted, ignored, accepted, ignored
    zeros = np.zeros((1, steps), dtype=np.int64)
    return Trajectories(
        zeros,
        zeros,
        np.zeros((1, steps, 5)),
        actions,
        responses,
        probs,
        None,
        None,
        p_accept,
        zeros - 1,
        archetype_batch().take(slice(0, 1)),
    )


def test_calibration_ranks_probabilities_true_and_realised_acceptance() -> None:
    report = calibration_report(_trajectory(), ranks=4)
    first, second, third, fourth = report["ranks"]
    assert first["mean_probability"] == pytest.approx(0.7) and first["true_accept"] == pytest.approx(0.8)
    assert first["chosen"] == 2 and first["realised_accept"] == pytest.approx(0.5)
    assert second["chosen"] == 1 and second["realised_accept"] == 1.0 and second["true_accept"] == 0.4
    assert third["chosen"] == 1 and third["realised_accept"] == 0.0
    assert fourth["chosen"] == 0 and fourth["realised_accept"] is None
    gap = report["runner_up_gap_nats"]
    assert gap["median"] == pytest.approx(np.log(0.7 / 0.2))
    assert gap["capped_share"] == 0.0


def test_sharpen_and_product_of_experts() -> None:
    p = np.array([[0.6, 0.3, 0.1]])
    np.testing.assert_allclose(sharpen(p, 1.0), p)
    np.testing.assert_allclose(sharpen(p, 0.0), np.full((1, 3), 1 / 3))
    assert sharpen(p, 2.0)[0, 0] > 0.6
    ones = np.ones((1, 3))
    np.testing.assert_allclose(product_of_experts(p, ones, ones, 2.0), p)  # flat posterior changes nothing
    favours_last = product_of_experts(p, np.array([[1.0, 1.0, 9.0]]), np.array([[9.0, 9.0, 1.0]]), 2.0)
    assert favours_last[0].argmax() == 2


def test_snips_is_exact_on_policy_and_reweights_off_policy() -> None:
    reward = np.array([1, 0, 1, 1])
    logged = np.array([0.5, 0.5, 0.25, 0.25])
    estimate, ess = snips(logged, logged, reward)
    assert estimate == 0.75 and ess == 4.0
    estimate, ess = snips(np.array([0.5, 0.5, 0.0, 0.0]), logged, reward)
    assert estimate == 0.5 and ess == 2.0


def test_on_policy_target_is_estimated_without_error_and_floors_widen_support() -> None:
    people = sample_profiles(np.random.default_rng([123, 0x5EED]), 12, "archetypes")
    report = run_exploration(
        lambda: make_policy("bayes", people), people, 1, 123, [0.5], [0.0, 0.05], 0.5, 2.0
    )
    on_policy, floored = report["points"]
    # Logging at sharpness 0.5 without floor IS the target "sharpness 0.5": weights 1, no error.
    assert on_policy["targets"]["sharpness"]["ess_share"] == pytest.approx(1.0)
    assert on_policy["targets"]["sharpness"]["error"] == pytest.approx(0.0, abs=1e-12)
    assert floored["targets"]["sharpness"]["ess_share"] < 1.0
    assert floored["median_propensity"] < on_policy["median_propensity"] + 1e-9
    assert report["targets_true_acceptance"]["sharpness"] == pytest.approx(on_policy["logging_acceptance"])


def test_calibration_and_exploration_commands(tmp_path: Path) -> None:
    calib = CliRunner().invoke(
        _root, ["bench", "calibration", "--policy", "bayes", "--users", "6", "--weeks", "1", "--json"]
    )
    assert calib.exit_code == 0, calib.output
    payload = json.loads(calib.stdout)
    assert payload["policy"] == "bayes" and payload["decisions"] == 6 * 28 and len(payload["ranks"]) == 5
    png = tmp_path / "trade-off.png"
    args = ["bench", "exploration", "--policy", "thompson", "--profiles", "heldout-sparse", "--users", "5"]
    args += ["--weeks", "1", "--sharpness", "1,0.5", "--floor", "0,0.02", "--plot", str(png), "--json"]
    result = CliRunner().invoke(_root, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["points"]) == 4 and png.stat().st_size > 1000
    bad = CliRunner().invoke(_root, ["bench", "exploration", "--policy", "thompson", "--floor", "0.5"])
    assert bad.exit_code == 2

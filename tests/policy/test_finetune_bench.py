"""``rhythm bench finetune``: it logs what the service serves, and its arms say what they are."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from domain import N_ACTIONS
from policy.evidence import EvidenceConfig
from policy.finetune import FinetuneConfig
from policy.finetune_bench import (
    ARMS,
    ArmPolicy,
    BenchConfig,
    answer_counts,
    arm_name,
    check_seed,
    run_benchmark,
    served,
    sharpness_arm,
)
from policy.sim_policy import EvidencePolicy
from sim.env import Observation
from sim.profiles import sample_profiles
from sim.rollout import rollout

FIXED = np.array([0.30, 0.05, 0.20, 0.10, 0.05, 0.05, 0.10, 0.05, 0.05, 0.05])


class FixedModel:
    """A model that answers the same distribution whatever the prompt (enough to check the combination)."""

    def distribution(self, prompt: str) -> np.ndarray:
        assert prompt
        return FIXED.copy()


class FixedPolicy:
    name = "fixed"

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        pass

    def probs(self, obs: Observation) -> np.ndarray:
        return np.tile(FIXED, (len(obs), 1))

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        pass

    def belief(self) -> np.ndarray | None:
        return None


def test_the_logging_arm_serves_the_services_combination_and_floor() -> None:
    """Two weeks with a model that never changes its mind: the arm with answers on must give exactly the
    simulator's served policy (policy.evidence, as the service combines) mixed with the service's floor, and
    its trace must hold the counts each decision used."""
    profiles = sample_profiles(np.random.default_rng(5), 3, "heldout-sparse")
    config = EvidenceConfig()
    arm = ArmPolicy([FixedModel()] * 3, 30, config, floor=0.02)
    reference = EvidencePolicy(FixedPolicy(), config)
    ours = rollout(arm, profiles, 2, 321)
    theirs = rollout(reference, profiles, 2, 321)
    # The floor changes the draws, so compare distribution by distribution on our trajectory's decisions.
    assert len(arm.trace) == ours.n_steps
    np.testing.assert_array_equal(arm.trace[-1][2] + arm.trace[-1][3], np.full(3, ours.n_steps - 1))
    replay = EvidencePolicy(FixedPolicy(), config)
    replay.reset(3, np.random.default_rng(0))
    for t in range(ours.n_steps):
        obs = Observation(t, ours.day[:, t], ours.slot[:, t], ours.meters[:, t])
        expected = served(replay.probs(obs), 0.02)
        np.testing.assert_allclose(ours.probs[:, t], expected, atol=1e-12)
        replay.update(obs, ours.actions[:, t], ours.responses[:, t])
    assert ours.probs.min() >= 0.02 / N_ACTIONS - 1e-12
    # The gate's recount from the trajectory is the logger's own trace; from a later step it counts less.
    for logged, recount in zip(arm.trace, answer_counts(ours, 0, config), strict=True):
        for a, b in zip(logged, recount, strict=True):
            np.testing.assert_array_equal(a, b)
    later = answer_counts(ours, 28, config)
    assert len(later) == ours.n_steps - 28
    np.testing.assert_array_equal(later[0][2] + later[0][3], np.zeros(3))
    np.testing.assert_array_equal(later[-1][2] + later[-1][3], np.full(3, ours.n_steps - 29))
    # The answers move the distribution away from the model's (else the layer would do nothing here).
    assert np.abs(theirs.probs[:, -1] - FIXED).max() > 0.05
    # Without the layer the arm is the model plus the floor.
    plain = ArmPolicy([FixedModel()] * 3, 30, None, floor=0.02)
    bare = rollout(plain, profiles, 1, 321)
    np.testing.assert_allclose(bare.probs, np.broadcast_to(served(FIXED, 0.02), bare.probs.shape))


def test_a_training_seed_of_the_shipped_model_is_refused() -> None:
    with pytest.raises(ValueError, match="trained on"):
        check_seed(0)
    check_seed(123)


@pytest.mark.slow
def test_a_small_run_reports_every_arm_with_the_answers_layer_on_and_off() -> None:
    config = BenchConfig(
        users=2,
        modes=("heldout-rules",),
        finetune=FinetuneConfig(epochs=1, max_seconds=math.inf),
        # The service's own sharpness as an extra arm must reproduce the as-served adapter arm exactly.
        adapter_sharpness=(EvidenceConfig().sharpness, 1.0),
        throughput=False,
    )
    results: dict[str, Any] = run_benchmark(config)
    assert "on" in results["posterior_layer"] and results["config"]["evidence"] == EvidenceConfig().as_dict()
    (mode,) = results["modes"]
    arms = {arm_name(name, answers) for name, _, _ in ARMS for answers in (True, False)}
    extra = {sharpness_arm(0.25), sharpness_arm(1.0)}
    assert set(mode["week5_acceptance"]) == arms | extra
    assert mode["week5_acceptance"][sharpness_arm(0.25)] == mode["week5_acceptance"]["adapter+7d+answers"]
    same = mode["adapter_minus_base30"][sharpness_arm(0.25)]
    assert same == mode["adapter_minus_base30"]["answers_on"]
    # No time cap: written as null, never as a non-JSON infinity.
    assert results["config"]["finetune"]["max_seconds"] is None
    for layer, suffix in (("answers_on", "+answers"), ("answers_off", "")):
        diff = mode["adapter_minus_base30"][layer]["mean"]
        adapter = mode["week5_acceptance"][f"adapter+7d{suffix}"]["mean"]
        base = mode["week5_acceptance"][f"base+30d{suffix}"]["mean"]
        assert diff == pytest.approx(adapter - base, abs=2e-4)
        assert mode["target_met"][layer] == (diff >= 0)
    gate = mode["gate"]
    assert sum(gate["decisions"].values()) == 2
    assert 0 <= gate["promoted_really_better"] <= gate["promoted"] <= 2
    assert 0.0 < mode["train_seconds_per_user"]["mean"] <= mode["train_seconds_per_user"]["max"]


@pytest.mark.parametrize("value", ["2", "0", "-0.5", "half", "0.5,1.5"])
def test_the_command_refuses_a_sharpness_outside_0_to_1(value: str) -> None:
    import typer
    from typer.testing import CliRunner

    from policy.cli import bench_finetune

    app = typer.Typer()
    app.command()(bench_finetune)
    app.command("other")(lambda: None)  # two commands: the first is invoked by name
    done = CliRunner().invoke(app, ["bench-finetune", "--adapter-sharpness", value])
    assert done.exit_code == 2 and "adapter-sharpness" in done.output

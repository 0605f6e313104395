"""Policies: the interface, exact Bayes identification, the acceptance ordering, the service fallback."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from domain import ACTIONS, N_ACTIONS, RESPONSES, Action, Interaction, Meters, Response, Slot, SlotState
from sim.bench import run_benchmark
from sim.env import Observation
from sim.policies import (
    ExactBayesPolicy,
    available_policies,
    exact_bayes_distribution,
    make_policy,
    register_policy,
)
from sim.policies.baselines import RandomPolicy
from sim.profiles import ARCHETYPE_NAMES, archetype_batch, sample_profiles
from sim.response import response_probs
from sim.rollout import rollout

BUILT_IN = ["random", "heuristic", "thompson", "bayes", "particle", "particle-greedy", "oracle"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_policy_gives_distributions_and_a_full_trajectory(name: str) -> None:
    profiles = sample_profiles(np.random.default_rng(0), 20, "continuous")
    traj = rollout(make_policy(name, profiles), profiles, 1, seed=2)
    assert traj.probs.shape == (20, 28, N_ACTIONS)
    assert (traj.probs >= 0).all()
    np.testing.assert_allclose(traj.probs.sum(axis=2), 1.0)
    # The action taken always had positive probability under the logged distribution.
    taken = np.take_along_axis(traj.probs, traj.actions[:, :, None], axis=2)
    assert (taken > 0).all()
    if name in ("bayes", "particle", "particle-greedy"):
        assert traj.belief is not None and traj.belief.shape == (20, 28, 3)
        np.testing.assert_allclose(traj.belief.sum(axis=2), 1.0)
    else:
        assert traj.belief is None


def test_exact_bayes_identifies_archetypes_within_six_interactions() -> None:
    report = run_benchmark(["bayes"], "archetypes", users=600, weeks=1, seed=4)["bayes"]
    assert report["belief_identify_median"] is not None and report["belief_identify_median"] <= 6
    assert report["belief_identify_p90"] is not None and report["belief_identify_p90"] <= 12
    assert report["misidentification_rate"] < 0.1
    assert report["identify_median"] is not None and report["identify_median"] <= 6


def test_acceptance_ordering_oracle_bayes_thompson_random() -> None:
    results = run_benchmark(
        ["random", "thompson", "bayes", "oracle"], "archetypes", users=800, weeks=2, seed=9
    )
    ordered = [results[name] for name in ("oracle", "bayes", "thompson", "random")]
    for better, worse in itertools.pairwise(ordered):
        assert better["acceptance_ci"][0] > worse["acceptance_ci"][1], (better, worse)
    assert results["oracle"]["regret"] == 0.0
    assert results["bayes"]["regret"] < results["thompson"]["regret"] < results["random"]["regret"]


def test_continuous_profiles_are_harder_than_archetypes_for_exact_bayes() -> None:
    arche = run_benchmark(["bayes", "oracle"], "archetypes", users=400, weeks=1, seed=1)
    cont = run_benchmark(["bayes", "particle", "oracle"], "continuous", users=400, weeks=1, seed=1)
    gap_arche = arche["oracle"]["acceptance"] - arche["bayes"]["acceptance"]
    gap_cont = cont["oracle"]["acceptance"] - cont["bayes"]["acceptance"]
    assert gap_cont > gap_arche + 0.1
    # The particle posterior, built for continuous profiles, beats the misspecified archetype posterior there.
    assert cont["particle"]["acceptance_ci"][0] > cont["bayes"]["acceptance_ci"][1]


def _state(day: int = 0, slot: Slot = Slot.MORNING, level: float = 0.6) -> SlotState:
    return SlotState(day, slot, Meters(*(level,) * 5))


def _check_distribution(dist: np.ndarray, posterior: dict[str, float]) -> None:
    assert dist.shape == (N_ACTIONS,)
    assert np.isfinite(dist).all() and (dist > 0).all()
    assert dist.sum() == pytest.approx(1.0)
    assert set(posterior) == set(ARCHETYPE_NAMES)
    assert sum(posterior.values()) == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for v in posterior.values())


def test_fallback_with_empty_history_is_the_prior_mixture() -> None:
    dist, posterior = exact_bayes_distribution([], _state())
    _check_distribution(dist, posterior)
    assert all(v == pytest.approx(1 / 3) for v in posterior.values())
    # Posterior sampling over three equally likely archetypes: their best actions share the mass.
    assert np.sort(dist)[-3:].sum() > 0.9


@pytest.mark.parametrize(
    "history",
    [
        [Interaction(_state(d % 7, Slot(d % 4), 0.0), Action.SLEEP, Response.RESCHEDULED) for d in range(30)],
        [
            Interaction(_state(d % 7, Slot(d % 4), 1.0), Action.BINGE_WATCH, Response.ACCEPTED)
            for d in range(300)
        ],
        [Interaction(_state(0, Slot.MORNING, 0.5), Action(a), r) for a in Action for r in Response],
    ],
    ids=["all-rescheduled-empty-meters", "long-unlikely-accepts-full-meters", "every-action-every-response"],
)
def test_fallback_survives_odd_histories(history: list[Interaction]) -> None:
    dist, posterior = exact_bayes_distribution(history, _state(6, Slot.NIGHT, 1.0))
    _check_distribution(dist, posterior)


def test_fallback_floor_is_respected() -> None:
    dist, _ = exact_bayes_distribution([], _state(), floor=0.02)
    assert dist.min() >= 0.02 - 1e-12
    with pytest.raises(ValueError):
        exact_bayes_distribution([], _state(), floor=0.2)


def test_fallback_finds_a_simulated_workaholic_and_matches_the_vectorised_policy() -> None:
    profiles = archetype_batch(("workaholic_stoic",))
    traj = rollout(ExactBayesPolicy(), profiles, 1, seed=21)
    history = [
        Interaction(
            SlotState(
                int(traj.day[0, t]), Slot(int(traj.slot[0, t])), Meters.from_sequence(traj.meters[0, t])
            ),
            ACTIONS[int(traj.actions[0, t])],
            RESPONSES[int(traj.responses[0, t])],
        )
        for t in range(12)
    ]
    dist, posterior = exact_bayes_distribution(history, _state(1, Slot.MORNING, 0.6))
    assert max(posterior, key=posterior.__getitem__) == "workaholic_stoic"
    assert posterior["workaholic_stoic"] > 0.9
    assert dist.argmax() == Action.DEEP_WORK.index
    assert traj.belief is not None
    expected = traj.belief[0, 12]
    np.testing.assert_allclose([posterior[n] for n in ARCHETYPE_NAMES], expected, rtol=1e-9)


def test_registry_is_extensible_and_rejects_unknown_names() -> None:
    register_policy("test-uniform", lambda arg, profiles: RandomPolicy())
    assert "test-uniform" in available_policies()
    profiles = archetype_batch()
    assert isinstance(make_policy("test-uniform", profiles), RandomPolicy)
    with pytest.raises(KeyError):
        make_policy("no-such-policy", profiles)
    with pytest.raises(ValueError):
        make_policy("random:3", profiles)
    assert make_policy("particle:8", profiles).n_particles == 8  # type: ignore[attr-defined]


def test_bayes_distribution_is_posterior_sampling() -> None:
    policy = ExactBayesPolicy()
    policy.reset(1, np.random.default_rng(0))
    obs = Observation(0, np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.full((1, 5), 0.6))
    best = response_probs(archetype_batch(), np.full((3, 5), 0.6), np.zeros(3, dtype=np.int64))[
        :, :, 0
    ].argmax(1)
    expected = np.zeros(N_ACTIONS)
    np.add.at(expected, best, 1 / 3)
    np.testing.assert_allclose(policy.probs(obs)[0], expected)


def test_fallback_accepts_plain_strings_from_storage() -> None:
    as_enums = [Interaction(_state(), Action.SOCIALIZE, Response.IGNORED)]
    as_strings = [Interaction(_state(), "SOCIALIZE", "ignored")]  # type: ignore[arg-type]
    np.testing.assert_allclose(
        exact_bayes_distribution(as_strings, _state())[0], exact_bayes_distribution(as_enums, _state())[0]
    )


def test_the_simulator_never_loads_the_policy_model() -> None:
    # In a fresh interpreter: the simulator, its benchmark and its CLI import nothing of `policy`, and a
    # model policy nobody registered is an unknown name, not a hidden import.
    code = textwrap.dedent(
        """
        import sys
        import sim.bench, sim.cli, sim.policies
        from sim.profiles import archetype_batch
        try:
            sim.policies.make_policy("model", archetype_batch())
        except KeyError as exc:
            assert "unknown policy 'model'" in str(exc), exc
        else:
            raise AssertionError("'model' resolved without being registered")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("policy", "app", "workers"))
        assert not loaded, loaded
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr

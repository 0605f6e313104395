"""The policy model's headline claims, guarded: a seeded, CI-sized run of the shipped model (issue 14).

One torch thread, 40 simulated users, evaluation seed 123 (outside the model's training seeds,
:mod:`sim.seeds`); every policy of a comparison sees the same users and environment seed. Measured on the
shipped rhythm-tiny (this file's run, deterministic per seed): archetypes week 1 model 0.717, exact Bayes
0.762 (ratio 0.941), fixed heuristic schedule 0.449; heldout-sparse over 2 weeks model 0.230 (0.230 · 0.229),
Thompson 0.263 (0.223 · 0.304). ~40 s of CPU on a quiet 2-core machine.
"""

from __future__ import annotations

from typing import Any

import pytest

from policy.sim_policy import register_model_policies
from sim.bench import run_benchmark

USERS = 40
SEED = 123


@pytest.fixture(scope="module")
def archetypes_week1() -> dict[str, dict[str, Any]]:
    register_model_policies()
    return run_benchmark(["model", "bayes", "heuristic"], "archetypes", USERS, 1, SEED)


def test_model_reaches_ninety_percent_of_exact_bayes_on_archetypes_in_week_one(
    archetypes_week1: dict[str, dict[str, Any]],
) -> None:
    model, bayes = archetypes_week1["model"]["acceptance"], archetypes_week1["bayes"]["acceptance"]
    assert model >= 0.9 * bayes, (model, bayes)


def test_model_beats_the_fixed_schedule(archetypes_week1: dict[str, dict[str, Any]]) -> None:
    model, fixed = archetypes_week1["model"], archetypes_week1["heuristic"]
    # Margin: the lower end of the model's 95 % interval above the schedule's upper end.
    assert model["acceptance_ci"][0] > fixed["acceptance_ci"][1] + 0.1, (
        model["acceptance"],
        fixed["acceptance"],
    )


@pytest.mark.xfail(
    strict=True,
    reason=(
        "shipped rhythm-tiny loses to a prior-free Thompson bandit on a held-out family: heldout-sparse, 40 "
        "users, seed 123, 2 weeks: model 0.230 (0.230 · 0.229, flat) vs Thompson 0.263 (0.223 · 0.304); "
        "model v2 (issue 14) must turn this into a pass"
    ),
)
def test_model_beats_thompson_on_a_held_out_family_over_two_weeks() -> None:
    register_model_policies()
    results = run_benchmark(["model", "thompson"], "heldout-sparse", USERS, 2, SEED)
    model, thompson = results["model"], results["thompson"]
    assert model["acceptance"] > thompson["acceptance"]
    assert model["acceptance_by_week"][1] > thompson["acceptance_by_week"][1]

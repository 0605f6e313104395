"""The policy model's headline claims, guarded: a seeded, CI-sized run of the shipped model (issue 14).

One torch thread, 40 simulated users, evaluation seed 123 (outside the model's training seeds,
:mod:`sim.seeds`; the evidence settings were tuned on seed 321); every policy of a comparison sees the same
users and environment seed. Measured on the shipped rhythm-tiny (this file's run, deterministic per seed):
archetypes week 1 model 0.717, served (model + answers, :mod:`policy.evidence`) 0.737, exact Bayes 0.762
(ratio 0.941 / 0.967), fixed heuristic schedule 0.449; heldout-sparse over 2 weeks model 0.230
(0.230 · 0.229), served 0.328 (0.276 · 0.379), Thompson 0.263 (0.223 · 0.304). ~40 s of CPU on a quiet
2-core machine.
"""

from __future__ import annotations

from typing import Any

import pytest

from policy.sim_policy import register_model_policies
from sim.bench import run_benchmark

USERS = 40
SEED = 123
SERVED_ARCHETYPE_SLACK = 0.03
HELDOUT_MARGIN = 0.03


@pytest.fixture(scope="module")
def archetypes_week1() -> dict[str, dict[str, Any]]:
    register_model_policies()
    return run_benchmark(["model", "served", "bayes", "heuristic"], "archetypes", USERS, 1, SEED)


@pytest.fixture(scope="module")
def heldout_two_weeks() -> dict[str, dict[str, Any]]:
    register_model_policies()
    return run_benchmark(["model", "served", "thompson"], "heldout-sparse", USERS, 2, SEED)


def test_model_reaches_ninety_percent_of_exact_bayes_on_archetypes_in_week_one(
    archetypes_week1: dict[str, dict[str, Any]],
) -> None:
    model, bayes = archetypes_week1["model"]["acceptance"], archetypes_week1["bayes"]["acceptance"]
    assert model >= 0.9 * bayes, (model, bayes)


def test_the_served_combination_keeps_the_model_on_archetypes(
    archetypes_week1: dict[str, dict[str, Any]],
) -> None:
    """policy.evidence may cost at most a little where the model already knows the person."""
    served, model = archetypes_week1["served"]["acceptance"], archetypes_week1["model"]["acceptance"]
    bayes = archetypes_week1["bayes"]["acceptance"]
    assert served >= 0.9 * bayes, (served, bayes)
    assert served >= model - SERVED_ARCHETYPE_SLACK, (served, model)


def test_the_served_combination_beats_thompson_on_a_held_out_family_over_two_weeks(
    heldout_two_weeks: dict[str, dict[str, Any]],
) -> None:
    """The claim the product makes (it keeps reading a person it was not trained on), for what the service
    serves: the model combined with the person's answers."""
    served, thompson = heldout_two_weeks["served"], heldout_two_weeks["thompson"]
    model = heldout_two_weeks["model"]
    assert served["acceptance"] > thompson["acceptance"] + HELDOUT_MARGIN, (served, thompson)
    assert served["acceptance_by_week"][1] > thompson["acceptance_by_week"][1], (served, thompson)
    # It learns: week 2 above week 1, and above the model alone.
    assert served["acceptance_by_week"][1] > served["acceptance_by_week"][0] + HELDOUT_MARGIN
    assert served["acceptance"] > model["acceptance"] + HELDOUT_MARGIN


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
        "users, seed 123, 2 weeks: model 0.230 (0.230 · 0.229, flat) vs Thompson 0.263 (0.223 · 0.304); the "
        "service passes it by combining the model with the answers (test above); a model that learns in "
        "context by itself turns this into a pass"
    ),
)
def test_model_beats_thompson_on_a_held_out_family_over_two_weeks(
    heldout_two_weeks: dict[str, dict[str, Any]],
) -> None:
    model, thompson = heldout_two_weeks["model"], heldout_two_weeks["thompson"]
    assert model["acceptance"] > thompson["acceptance"]
    assert model["acceptance_by_week"][1] > thompson["acceptance_by_week"][1]

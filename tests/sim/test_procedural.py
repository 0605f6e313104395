"""Procedural training families: selectable, deterministic, the structures they promise, and apart from the
held-out families."""

from __future__ import annotations

import numpy as np
import pytest

from domain import N_ACTIONS
from sim.heldout import FAMILIES
from sim.policies import make_policy
from sim.procedural import (
    PROCEDURAL_FAMILIES,
    PROCEDURAL_MODES,
    STATE_PARAMS,
    TABLE_PARAMS,
    like_state,
    like_table,
    sample_state,
    sample_table,
)
from sim.profiles import TRAINING_MODES, sample_profiles
from sim.rollout import rollout


@pytest.mark.parametrize("mode", PROCEDURAL_MODES)
def test_procedural_modes_are_training_modes_and_deterministic(mode: str) -> None:
    assert mode in TRAINING_MODES and mode not in FAMILIES
    a = sample_profiles(np.random.default_rng(3), 5, mode)
    b = sample_profiles(np.random.default_rng(3), 5, mode)
    assert a.family == mode and a.params is not None and b.params is not None
    assert a.params.shape == (5, N_ACTIONS, PROCEDURAL_FAMILIES[mode].n_params)
    np.testing.assert_array_equal(a.params, b.params)


def test_table_people_differ_by_weekday_weekend_and_drift_and_ignore_meters() -> None:
    params = sample_table(np.random.default_rng(0), 400).reshape(-1, TABLE_PARAMS)
    k = len(params)
    meters_a, meters_b = np.zeros((k, 5)), np.random.default_rng(1).random((k, 5))
    monday, sunday = np.zeros(k, dtype=np.int64), np.full(k, 6)
    week0, week3 = np.zeros(k), np.full(k, 3.0)
    np.testing.assert_array_equal(
        like_table(params, meters_a, monday, week0), like_table(params, meters_b, monday, week0)
    )
    weekend_differs = ~np.isclose(
        like_table(params, meters_a, monday, week0), like_table(params, meters_a, sunday, week0)
    ).all(axis=1)
    drifts = ~np.isclose(
        like_table(params, meters_a, monday, week0), like_table(params, meters_a, monday, week3)
    ).all(axis=1)
    # Some people (rows are person x action) have weekend or per-day effects and drift, some do not.
    assert 0.2 < weekend_differs.mean() < 0.9
    assert 0.1 < drifts.mean() < 0.8


def test_state_people_follow_their_meters_only_where_their_weights_say() -> None:
    params = sample_state(np.random.default_rng(0), 300).reshape(-1, STATE_PARAMS)
    k = len(params)
    low, high = np.full((k, 5), 0.1), np.full((k, 5), 0.9)
    day, week = np.zeros(k, dtype=np.int64), np.zeros(k)
    moved = ~np.isclose(like_state(params, low, day, week), like_state(params, high, day, week)).all(axis=1)
    uses_state = (params[:, 5:10] != 0).any(axis=1)
    # An action with no meter weight never moves with the meters; most with one do.
    assert not moved[~uses_state].any()
    assert moved[uses_state].mean() > 0.9
    assert 0.5 < uses_state.mean() < 0.85


@pytest.mark.parametrize("mode", PROCEDURAL_MODES)
def test_a_learner_has_something_to_learn(mode: str) -> None:
    """Random stays far below the oracle and a prior-free bandit climbs over 4 weeks: the families carry
    learnable structure (60 people, fixed seed)."""
    profiles = sample_profiles(np.random.default_rng([123, 1]), 60, mode)
    accepted = {}
    for name in ("random", "thompson", "oracle"):
        traj = rollout(make_policy(name, profiles), profiles, 4, seed=123)
        accepted[name] = traj.accepted.reshape(60, 4, 28).mean(axis=(0, 2))
    assert accepted["oracle"].mean() > accepted["random"].mean() + 0.3
    assert accepted["thompson"][3] > accepted["thompson"][0] + 0.08

"""The user response model: valid distributions, distinct archetypes, rescheduling."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import N_ACTIONS, Action, Slot
from sim.profiles import ARCHETYPE_NAMES, archetype_batch, sample_profiles
from sim.response import ACCEPTED, IGNORE_BASE, IGNORED, RESCHEDULED, response_probs, sample_responses


@settings(max_examples=50, deadline=None)
@given(
    mode=st.sampled_from(["archetypes", "continuous", "ood"]),
    seed=st.integers(0, 2**31 - 1),
    meters=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5),
    slot=st.integers(0, 3),
)
def test_response_probabilities_are_distributions(
    mode: str, seed: int, meters: list[float], slot: int
) -> None:
    profiles = sample_profiles(np.random.default_rng(seed), 16, mode)
    p = response_probs(profiles, np.tile(meters, (16, 1)), np.full(16, slot))
    assert p.shape == (16, N_ACTIONS, 3)
    assert np.isfinite(p).all() and (p >= 0.0).all() and (p <= 1.0).all()
    np.testing.assert_allclose(p.sum(axis=2), 1.0)
    # Some recommendations go unseen whatever the profile.
    assert (p[:, :, IGNORED] >= IGNORE_BASE - 1e-12).all()


def test_archetypes_accept_clearly_different_actions() -> None:
    p = response_probs(archetype_batch(), np.full((3, 5), 0.65), np.full(3, int(Slot.AFTERNOON)))[
        :, :, ACCEPTED
    ]
    spread = p.max(axis=0) - p.min(axis=0)
    assert (spread >= 0.5).sum() >= 4, spread
    intro, owl, work = (ARCHETYPE_NAMES.index(n) for n in ARCHETYPE_NAMES)
    assert p[work, Action.DEEP_WORK.index] > 0.75 and p[owl, Action.DEEP_WORK.index] < 0.2
    assert p[owl, Action.SOCIALIZE.index] > 0.75 and p[intro, Action.SOCIALIZE.index] < 0.2


def test_liked_action_in_the_wrong_slot_is_rescheduled() -> None:
    profiles = archetype_batch()
    meters = np.full((3, 5), 0.65)
    morning = response_probs(profiles, meters, np.full(3, int(Slot.MORNING)))[:, Action.SLEEP.index]
    night = response_probs(profiles, meters, np.full(3, int(Slot.NIGHT)))[:, Action.SLEEP.index]
    assert (morning[:, RESCHEDULED] > night[:, RESCHEDULED] + 0.1).all()
    assert (night[:, ACCEPTED] > morning[:, ACCEPTED]).all()


def test_sampled_responses_follow_the_probabilities() -> None:
    n = 40_000
    profiles = sample_profiles(np.random.default_rng(0), 1, "continuous").repeat(n)
    p = response_probs(profiles, np.full((n, 5), 0.5), np.zeros(n, dtype=np.int64))
    actions = np.full(n, Action.MEDITATE.index)
    counts = np.bincount(sample_responses(np.random.default_rng(1), p, actions), minlength=3) / n
    np.testing.assert_allclose(counts, p[0, Action.MEDITATE.index], atol=0.01)

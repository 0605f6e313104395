"""The DPT recipe's data: labels are the hidden person's true acceptance, histories come from several
behaviours, and its rollout seeds are the ones the benchmarks fence off."""

from __future__ import annotations

import numpy as np

from policy.training.config import DPT_MODE_MIX, PretrainConfig, chunk_plan
from policy.training.data import _chunks, generate_sequences
from policy.training.dpt import MixedBehaviour, generate_dpt_episodes
from policy.training.seeds import chunk_seed, rollout_seeds
from sim.profiles import sample_profiles
from sim.response import accept_probs
from sim.rollout import rollout


def test_labels_are_the_true_acceptance_in_the_state_of_each_decision() -> None:
    episodes = generate_dpt_episodes(8, weeks=1, seed=5, mode="proc-state")
    tr = episodes.trajectories
    for t in (0, 9, 27):
        expected = accept_probs(tr.profiles, tr.meters[:, t], tr.slot[:, t], tr.day[:, t], t)
        np.testing.assert_allclose(episodes.mean_accept[:, t], expected)
    # The label is about the person, not about what the behaviour did: it differs from the behaviour's
    # own distribution.
    assert not np.allclose(episodes.mean_accept, tr.probs)


def test_the_behaviour_mix_holds_random_bandit_and_noisy_oracle_users() -> None:
    profiles = sample_profiles(np.random.default_rng(0), 300, "proc-table")
    behaviour = MixedBehaviour(profiles)
    traj = rollout(behaviour, profiles, 1, seed=9)
    kinds = np.bincount(behaviour._kind, minlength=3) / 300
    assert (kinds > 0.1).all()
    uniform = np.isclose(traj.probs, 0.1).all(axis=(1, 2))
    assert np.array_equal(uniform, behaviour._kind == 0)
    # The noisy oracle is better than chance on its users; the uniform users are not.
    accepted = traj.accepted.mean(axis=1)
    assert accepted[behaviour._kind == 2].mean() > accepted[behaviour._kind == 0].mean() + 0.15


def test_dpt_chunks_cover_the_mix_and_their_seeds_are_the_fenced_ones() -> None:
    config = PretrainConfig(recipe="dpt", seed=3, users=1200)
    chunks = _chunks(config)
    # Shares are rounded per mix entry, so the total may be off by at most one user per entry.
    assert abs(sum(c.users for c in chunks) - config.users) <= len(chunk_plan("dpt"))
    assert {c.mode for c in chunks} == {mode for mode, _ in DPT_MODE_MIX}
    used = {chunk_seed(config.seed, c.mix_index, c.part) for c in chunks}
    assert used == rollout_seeds(config.seed, config.users, chunk_plan("dpt"))


def test_dpt_sequences_are_generated_end_to_end() -> None:
    config = PretrainConfig(recipe="dpt", seed=2, users=40, data_workers=1)
    sequences = generate_sequences(config, lambda n: None)
    assert 30 <= len(sequences) <= 45
    for seq in sequences:
        assert len(seq.positions) == len(seq.mean_accept)
        assert ((seq.mean_accept >= 0) & (seq.mean_accept <= 1)).all()

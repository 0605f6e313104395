"""Batching: the collated targets are the teacher's distribution at the requested inverse temperature."""

from __future__ import annotations

import numpy as np

from policy.teacher import generate_episodes
from policy.tokenizer import build_tokenizer
from policy.training.batching import collate
from policy.training.data import episodes_to_sequences


def _entropy(p: np.ndarray) -> np.ndarray:
    return np.asarray(-(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1))


def test_collate_targets_are_the_teacher_at_the_requested_temperature() -> None:
    episodes = generate_episodes(4, weeks=1, seed=4, n_particles=16)
    sequences = episodes_to_sequences(episodes, build_tokenizer(), np.random.default_rng(1))
    soft = collate(sequences, pad_id=0, beta=10.0).targets.numpy()
    sharp = collate(sequences, pad_id=0, beta=episodes.beta).targets.numpy()
    assert np.allclose(soft.sum(axis=1), 1.0) and np.allclose(sharp.sum(axis=1), 1.0)
    first = episodes.targets[0, : len(sequences[0].positions)]
    assert np.allclose(sharp[: len(first)], first, atol=1e-6)
    # A softer target spreads mass: its entropy is at least as high at every decision.
    assert (_entropy(soft) >= _entropy(sharp) - 1e-6).all()
    assert _entropy(soft).mean() > _entropy(sharp).mean()

"""Training data: each decision of an episode is supervised once; the data do not depend on the workers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from policy.teacher import generate_episodes
from policy.tokenizer import build_tokenizer
from policy.training.config import PretrainConfig
from policy.training.data import episodes_to_sequences, generate_sequences


def test_every_decision_of_an_episode_is_supervised_once() -> None:
    episodes = generate_episodes(6, weeks=1, seed=3, n_particles=16)
    assert np.allclose(episodes.targets.sum(axis=2), 1.0)
    tokenizer = build_tokenizer()
    sequences = episodes_to_sequences(episodes, tokenizer, np.random.default_rng(0))
    recommended = tokenizer.convert_tokens_to_ids("recommended")
    for seq in sequences:
        assert len(seq.positions) == len(seq.mean_accept) >= 1
        # One response label per history line, each a distribution over the 3 responses.
        assert len(seq.response_positions) == len(seq.response_targets) == len(seq.positions) - 1
        assert np.allclose(seq.response_targets.sum(axis=1), 1.0)
        assert (seq.ids[seq.positions[:-1]] == recommended).all()
        assert seq.positions[-1] == len(seq.ids) - 1
        assert tokenizer.convert_ids_to_tokens(int(seq.ids[-1])) == "action:"


def test_training_data_do_not_depend_on_the_number_of_worker_processes() -> None:
    config = PretrainConfig(seed=7, users=30, particles=8, data_workers=1)
    counted: list[int] = []
    serial = generate_sequences(config, counted.append)
    parallel = generate_sequences(replace(config, data_workers=2), lambda n: None)
    assert sum(counted) == 30 and len(serial) == len(parallel) == 30
    for a, b in zip(serial, parallel, strict=True):
        assert np.array_equal(a.ids, b.ids)
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.mean_accept, b.mean_accept)
        assert np.array_equal(a.response_targets, b.response_targets)
    # Different users and cuts across the mix, not one episode repeated.
    assert len({len(s.ids) for s in serial}) > 5

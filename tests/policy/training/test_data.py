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


def test_missing_meter_masks_follow_the_plan() -> None:
    from policy.training.config import MissingMeters
    from policy.training.data import missing_masks

    rng = np.random.default_rng(5)
    plan = MissingMeters(no_device=0.2, some=0.3, gaps=0.0)
    masks = [missing_masks(40, plan, rng) for _ in range(2000)]
    all_gone = float(np.mean([bool(m.all()) for m in masks]))
    constant_subset = float(np.mean([bool(m.any() and not m.all() and (m == m[0]).all()) for m in masks]))
    assert abs(all_gone - (0.2 + 0.3 / 32)) < 0.03  # a subset of all 5 meters is drawn 1 in 32 times
    assert abs(constant_subset - 0.3 * 30 / 32) < 0.03
    assert np.mean([not m.any() for m in masks]) > 0.45
    gappy = [
        missing_masks(200, MissingMeters(no_device=0, some=0, gaps=1, max_gap_rate=0.3), rng)
        for _ in range(200)
    ]
    rates = np.array([m.mean() for m in gappy])
    assert 0.12 < rates.mean() < 0.18 and rates.max() < 0.4


def test_version_2_data_hide_meters_with_their_own_token_and_keep_the_targets() -> None:
    from policy.training.config import MissingMeters

    episodes = generate_episodes(12, weeks=1, seed=3, n_particles=16)
    tokenizer = build_tokenizer(2)
    plan = MissingMeters(no_device=0.5, some=0.5, gaps=0.0)
    hidden = episodes_to_sequences(
        episodes, tokenizer, np.random.default_rng(0), renderer_version=2, missing=plan
    )
    full = episodes_to_sequences(episodes, tokenizer, np.random.default_rng(0), renderer_version=2)
    from policy.tokenizer import missing_meter_tokens

    missing_ids = {tokenizer.get_vocab()[word] for word in missing_meter_tokens()}
    for a, b in zip(hidden, full, strict=True):
        assert tokenizer.unk_token_id not in a.ids
        assert len(a.ids) == len(b.ids) and np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.mean_accept, b.mean_accept)
    assert all(missing_ids & set(a.ids.tolist()) for a in hidden)
    assert not any(missing_ids & set(b.ids.tolist()) for b in full)
    with np.testing.assert_raises(ValueError):
        episodes_to_sequences(episodes, build_tokenizer(1), np.random.default_rng(0), missing=plan)

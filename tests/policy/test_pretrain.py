from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from policy.local import LocalPolicyModel
from policy.model import MODEL_FILES, ModelSpec, build_model
from policy.pretrain import (
    PretrainConfig,
    collate,
    episodes_to_sequences,
    generate_sequences,
    pretrain,
    sharpen_head,
)
from policy.prompt import render_prompt
from policy.teacher import generate_episodes
from policy.tokenizer import build_tokenizer
from tests.policy.conftest import make_history


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


def test_sharpen_head_multiplies_the_logits(tmp_path: Path) -> None:
    model, tokenizer = build_model(ModelSpec(), seed=3)
    ids = tokenizer(render_prompt(*make_history(3)), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = model(input_ids=ids).logits[0, -1]
        sharpen_head(model, 4.0)
        after = model(input_ids=ids).logits[0, -1]
    assert torch.allclose(after, 4.0 * before, atol=1e-5)


def test_short_pretrain_writes_a_loadable_folder_and_learns(tmp_path: Path) -> None:
    config = PretrainConfig(seed=5, users=120, steps=12, batch_tokens=6000, particles=16, eval_users=0)
    out = tmp_path / "tiny"
    result = pretrain(config, out, quiet=True)
    for name in MODEL_FILES:
        assert (out / name).is_file(), name
    assert result.steps_done == 12
    assert result.train_loss_last < result.train_loss_first
    assert result.val_kl_after < result.val_kl_before
    assert 0.0 <= result.val_argmax_agreement <= 1.0
    card = (out / "README.md").read_text()
    assert "rhythm pretrain --seed 5" in card
    metrics = json.loads((out / "training_metrics.json").read_text())
    assert metrics["steps_done"] == 12
    AutoTokenizer.from_pretrained(out)
    AutoModelForCausalLM.from_pretrained(out)
    p = LocalPolicyModel.load(out).distribution(render_prompt(*make_history(4)))
    assert p.shape == (10,) and abs(p.sum() - 1.0) < 1e-9

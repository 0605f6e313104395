from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from policy.local import LocalPolicyModel
from policy.model import MODEL_FILES
from policy.pretrain import PretrainConfig, episodes_to_sequences, pretrain
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
        assert len(seq.positions) == len(seq.targets) >= 1
        assert (seq.ids[seq.positions[:-1]] == recommended).all()
        assert seq.positions[-1] == len(seq.ids) - 1
        assert tokenizer.convert_ids_to_tokens(int(seq.ids[-1])) == "action:"


def test_short_pretrain_writes_a_loadable_folder_and_learns(tmp_path: Path) -> None:
    config = PretrainConfig(seed=5, users=120, steps=12, batch_tokens=6000, particles=16, eval_users=0)
    out = tmp_path / "tiny"
    result = pretrain(config, out, quiet=True)
    for name in MODEL_FILES:
        assert (out / name).is_file(), name
    assert result.steps_done == 12
    assert result.train_loss_last < result.train_loss_first
    assert result.val_kl_after < result.val_kl_before
    card = (out / "README.md").read_text()
    assert "rhythm pretrain --seed 5" in card
    metrics = json.loads((out / "training_metrics.json").read_text())
    assert metrics["steps_done"] == 12
    AutoTokenizer.from_pretrained(out)
    AutoModelForCausalLM.from_pretrained(out)
    p = LocalPolicyModel.load(out).distribution(render_prompt(*make_history(4)))
    assert p.shape == (10,) and abs(p.sum() - 1.0) < 1e-9

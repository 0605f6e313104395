"""The pretraining run: head sharpening, and a short run that writes a loadable folder with its card."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from policy.local import LocalPolicyModel
from policy.model import MODEL_FILES, ModelSpec, build_model
from policy.prompt import render_prompt
from policy.training.config import PretrainConfig
from policy.training.pretrain import pretrain, sharpen_head
from tests.policy.conftest import make_history


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

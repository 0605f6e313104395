"""The per-user LoRA fine-tune: peft folder vLLM loads, deterministic per seed, learns the user's answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from domain import N_ACTIONS
from policy.finetune import (
    Example,
    FinetuneConfig,
    distributions,
    finetune,
    load_adapter_model,
    load_base,
)
from policy.paths import base_model_version
from policy.prompt import render_prompt
from tests.policy.conftest import make_history

SMALL = FinetuneConfig(epochs=3, batch_size=8, lr=1e-2, seed=3)


def _examples(n: int, accepted_action: int) -> list[Example]:
    """A user who accepts ``accepted_action`` and ignores everything else, on varied states."""
    examples = []
    for i in range(n):
        history, current = make_history(4 + i % 5, seed=100 + i)
        action = accepted_action if i % 2 == 0 else (accepted_action + 1 + i) % N_ACTIONS
        examples.append(
            Example(
                prompt=render_prompt(history[-3:], current, window_days=7),
                teacher_prompt=render_prompt(history, current, window_days=30),
                action=action,
                accepted=action == accepted_action,
                propensity=0.5,
            )
        )
    return examples


def test_adapter_is_a_peft_folder_that_moves_mass_to_the_accepted_action(tmp_path: Path) -> None:
    examples = _examples(16, accepted_action=6)
    result = finetune(examples, tmp_path / "u1-w202649", SMALL)

    config = json.loads((tmp_path / "u1-w202649" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 <= 16
    assert result.metrics["base_model"] == base_model_version()
    assert result.metrics["loss_last_epoch"] < result.metrics["loss_first_epoch"]

    base, tokenizer = load_base()
    prompts = [e.prompt for e in examples]
    before = distributions(base, tokenizer, prompts)[:, 6].mean()
    after = distributions(load_adapter_model(tmp_path / "u1-w202649"), tokenizer, prompts)[:, 6].mean()
    assert after > before + 0.05


def test_same_seed_same_adapter_other_seed_differs(tmp_path: Path) -> None:
    examples = _examples(8, accepted_action=2)
    one = FinetuneConfig(epochs=1, batch_size=8, seed=5)
    finetune(examples, tmp_path / "a", one)
    finetune(examples, tmp_path / "b", one)
    finetune(examples, tmp_path / "c", FinetuneConfig(epochs=1, batch_size=8, seed=6))
    a, b, c = (load_file(tmp_path / name / "adapter_model.safetensors") for name in "abc")
    assert a.keys() == b.keys()
    assert all(a[k].equal(b[k]) for k in a)
    assert any(not a[k].equal(c[k]) for k in a)


def test_rank_must_fit_vllm() -> None:
    with pytest.raises(ValueError, match="rank"):
        FinetuneConfig(rank=32)
    with pytest.raises(ValueError, match="rank"):
        FinetuneConfig(rank=12)

"""The shipped folder is an ordinary Hugging Face model: transformers and peft load and train it as is."""

from __future__ import annotations

import json

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from policy.model import MODEL_FILES
from policy.paths import SHIPPED_MODEL_DIR
from policy.prompt import render_prompt
from policy.tokenizer import action_token_ids
from tests.policy.conftest import make_history

MAX_WEIGHT_BYTES = 20 * 1024 * 1024


def test_folder_has_every_file_and_is_small() -> None:
    for name in MODEL_FILES:
        assert (SHIPPED_MODEL_DIR / name).is_file(), name
    assert (SHIPPED_MODEL_DIR / "model.safetensors").stat().st_size <= MAX_WEIGHT_BYTES
    config = json.loads((SHIPPED_MODEL_DIR / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["dtype"] == "float32"
    assert "auto_map" not in config  # no custom code: vLLM and transformers use their own Llama


def test_loads_with_auto_classes() -> None:
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(SHIPPED_MODEL_DIR)
    assert isinstance(model, LlamaForCausalLM)
    assert model.dtype == torch.float32
    ids = tokenizer(render_prompt(*make_history(5)), return_tensors="pt")
    assert int(ids["input_ids"][0, 0]) == tokenizer.bos_token_id
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (1, ids["input_ids"].shape[1], len(tokenizer))


def test_peft_lora_adapter_trains() -> None:
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_MODEL_DIR)
    base = AutoModelForCausalLM.from_pretrained(SHIPPED_MODEL_DIR)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)

    history, current = make_history(12, seed=13)
    batch = tokenizer(render_prompt(history, current), return_tensors="pt")
    action_ids = action_token_ids(tokenizer)
    target = torch.tensor([action_ids[3]])  # teach it to say SLEEP here

    def answer_logits() -> torch.Tensor:
        logits: torch.Tensor = model(**batch).logits[0, -1, action_ids]
        return logits

    # LoRA's B matrix starts at zero: the adapter is a no-op until trained.
    model.eval()
    with torch.no_grad():
        before = answer_logits().clone()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = torch.nn.functional.cross_entropy(model(**batch).logits[:, -1], target)
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    model.eval()
    with torch.no_grad():
        after = answer_logits()
    assert not torch.allclose(before, after, atol=1e-6)

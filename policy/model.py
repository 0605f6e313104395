"""The policy model's architecture and its on-disk folder.

A plain ``LlamaForCausalLM`` in float32 with no custom code, so transformers, peft and the vLLM CPU server
load the folder as it is. The size is chosen for the CPU: small enough that pretraining fits in minutes on 2
cores and a recommendation costs milliseconds, large enough to read a month of history in context.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from domain import METERS
from policy.prompt import MISSING_METER_TEXT, RENDERER_VERSION
from policy.tokenizer import MODEL_MAX_LENGTH, build_tokenizer

MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "README.md",
)


@dataclass(frozen=True)
class ModelSpec:
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = MODEL_MAX_LENGTH


def build_config(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        hidden_act="silu",
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )


def build_model(
    spec: ModelSpec, seed: int, renderer_version: int = RENDERER_VERSION
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A freshly initialised model (deterministic in ``seed``) and its tokenizer for ``renderer_version``."""
    tokenizer = build_tokenizer(renderer_version)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(build_config(spec, tokenizer))
    _init_meter_embeddings(model, tokenizer)
    return model.float(), tokenizer  # type: ignore[no-untyped-call]


@torch.no_grad()
def _init_meter_embeddings(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast) -> None:
    """Start each meter-value token (``Vitality=0.70,``) on a smooth curve in embedding space.

    Word-level tokens know nothing of numbers: from a random start the model would have to learn 505 meter
    embeddings one by one, and neighbouring values would share nothing. Placing value ``v`` of meter ``m`` at
    ``a_m + x b_m + x^2 c_m`` (``x = 2v - 1``) plus a little noise makes the magnitude linearly readable from
    the first step; training then refines it. This is only an initialisation: the weights stay a plain Llama.
    """
    embed: torch.Tensor = cast(torch.nn.Embedding, model.get_input_embeddings()).weight
    std = float(model.config.initializer_range)
    generator = torch.Generator().manual_seed(0)
    hidden = int(embed.shape[1])
    for position, meter in enumerate(METERS):
        a, b, c = (torch.randn(hidden, generator=generator) * std for _ in range(3))
        comma = "," if position < len(METERS) - 1 else ""
        for hundredths in range(101):
            token_id = tokenizer.convert_tokens_to_ids(f"{meter.label}={hundredths / 100:.2f}{comma}")
            x = 2.0 * hundredths / 100 - 1.0
            noise = torch.randn(hidden, generator=generator) * std * 0.25
            embed[token_id] = a + x * b + x * x * c + noise
        # Renderer version 2's "missing" word for this meter starts at the neutral value's place (x = 0) with
        # its own direction added, so it begins close to "0.50" (what version 1 showed) and can move away.
        missing = tokenizer.convert_tokens_to_ids(f"{meter.label}={MISSING_METER_TEXT}{comma}")
        if missing != tokenizer.unk_token_id:
            embed[missing] = a + torch.randn(hidden, generator=generator) * std


def save_model_folder(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out_dir: Path, model_card: str
) -> None:
    """Write the folder that every backend loads: weights, config, tokenizer files and the model card."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=1,
        do_sample=False,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    # Name the generic fast-tokenizer class (an alias in transformers 5, the class itself in 4) so any recent
    # transformers, including the older one inside the vLLM server's environment, resolves it.
    config_path = out_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    tokenizer_config["add_bos_token"] = True
    tokenizer_config["add_eos_token"] = False
    config_path.write_text(json.dumps(tokenizer_config, indent=2, sort_keys=True) + "\n")
    special = {"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token}
    special |= {"unk_token": tokenizer.unk_token, "pad_token": tokenizer.pad_token}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2, sort_keys=True) + "\n")
    (out_dir / "README.md").write_text(model_card)


def spec_dict(spec: ModelSpec) -> dict[str, int]:
    return asdict(spec)

"""Per-user LoRA fine-tunes of the frozen shipped model from a user's logged, answered recommendations.

The caller (the fine-tune job in ``app/finetune``, or a benchmark) turns logged rows into examples:
each holds the prompt re-rendered by the one renderer with the *short* adapter window (what the adapter will
read when it serves) and, for the distillation term, the prompt with the long window the base model reads.

Objective (measured with ``rhythm bench finetune --objective``; see ``docs/finetune.md``): the sum of

* **reward-weighted likelihood with unlikelihood** on the user's own decisions: ``-log q(a)`` for an accepted
  action, ``-log(1 - q(a))`` for an ignored one (weight ``unlikelihood_weight``) — the user's Accept/Ignore
  pattern goes into the weights;
* **context distillation**: KL(base model with the 30-day prompt || adapter with the 7-day prompt) — the
  adapter keeps what the long history told the base model when it reads only a week.

``q`` is the softmax over the 10 action tokens only, the quantity every backend serves. Distillation alone
cannot beat the base with 30 days (it is its target); the reward terms alone over-fit a few dozen answers
and drift on states the user never met, so the distillation term doubles as the regulariser.

LoRA rank stays within vLLM's ``--max-lora-rank`` (default 16); the folder is what
``PeftModel.save_pretrained`` writes, which both peft and vLLM's ``/v1/load_lora_adapter`` read. The run is
deterministic per seed (seeded init, seeded shuffling, one torch thread count set by the caller).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.nn import functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerBase

from policy.paths import base_model_version, model_folder
from policy.tokenizer import action_token_ids

# vLLM accepts ranks in {1, 8, 16, 32, …} up to ``--max-lora-rank`` (16 by default).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
DEFAULT_MAX_LORA_RANK = 16
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Example:
    """One answered decision of the user, ready for training or evaluation."""

    prompt: str  # rendered with the adapter's short window
    teacher_prompt: str  # rendered with the base model's long window (distillation target)
    action: int  # index into domain.ACTIONS
    accepted: bool
    propensity: float  # probability the logging policy gave ``action``


@dataclass(frozen=True)
class FinetuneConfig:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    epochs: int = 6
    lr: float = 3e-3
    batch_size: int = 16
    reward_weight: float = 1.0
    unlikelihood_weight: float = 0.5
    distill_weight: float = 1.0
    seed: int = 0
    # Stop early (and say so in the metrics) rather than overrun a worker's budget.
    max_seconds: float = 55.0
    max_lora_rank: int = DEFAULT_MAX_LORA_RANK
    target_modules: tuple[str, ...] = field(default=TARGET_MODULES)

    def __post_init__(self) -> None:
        if self.rank not in VLLM_LORA_RANKS or self.rank > self.max_lora_rank:
            raise ValueError(f"rank {self.rank} must be one of {VLLM_LORA_RANKS} and <= {self.max_lora_rank}")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        # JSON has no infinity: no time cap is written as null.
        if not math.isfinite(self.max_seconds):
            data["max_seconds"] = None
        return data


@dataclass
class FinetuneResult:
    out_dir: Path
    metrics: dict[str, Any]


def load_base(model_dir: Path | None = None) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    directory = model_folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = cast(LlamaForCausalLM, AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32))
    return model.eval(), tokenizer  # type: ignore[no-untyped-call]


def _encode(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> list[list[int]]:
    return [list(ids) for ids in tokenizer(list(prompts))["input_ids"]]


def _padded(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(row) for row in ids)
    out = torch.full((len(ids), longest), pad_id, dtype=torch.long)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    last = torch.tensor([len(seq) - 1 for seq in ids], dtype=torch.long)
    return out, last


def action_log_probs(
    model: torch.nn.Module, ids: torch.Tensor, last: torch.Tensor, action_ids: torch.Tensor
) -> torch.Tensor:
    """``(B, 10)`` log-probabilities over the action tokens (renormalised over them, like the backends) at
    each row's last real token. Right padding and causal attention: no real token sees a pad."""
    inner = cast(LlamaForCausalLM, getattr(model, "get_base_model", lambda: model)())
    hidden = inner.model(input_ids=ids).last_hidden_state
    logits = inner.lm_head(hidden[torch.arange(len(last)), last])[:, action_ids].float()
    return F.log_softmax(logits, dim=-1)


@torch.no_grad()
def distributions(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], batch_size: int = 16
) -> np.ndarray:
    """Action distributions ``(N, 10)`` of ``model`` (base or peft) for ``prompts``."""
    if not prompts:
        return np.zeros((0, len(action_token_ids(tokenizer))))
    was_training = model.training
    model.eval()
    action_ids = torch.tensor(action_token_ids(tokenizer))
    encoded = _encode(tokenizer, prompts)
    out = np.zeros((len(prompts), len(action_ids)))
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        ids, last = _padded([encoded[i] for i in rows], int(tokenizer.pad_token_id))
        out[rows] = action_log_probs(model, ids, last, action_ids).exp().double().numpy()
    model.train(was_training)
    return out


def finetune(
    examples: Sequence[Example],
    out_dir: Path,
    config: FinetuneConfig | None = None,
    *,
    model_dir: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> FinetuneResult:
    """Train a LoRA adapter on ``examples`` and save it (atomically) to ``out_dir``.

    ``on_step(done, total)`` reports progress (a progress bar, a job heartbeat)."""
    from peft import LoraConfig, get_peft_model

    config = config or FinetuneConfig()
    if not examples:
        raise ValueError("no examples to fine-tune on")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    base, tokenizer = load_base(model_dir)
    teacher = torch.from_numpy(distributions(base, tokenizer, [e.teacher_prompt for e in examples])).float()
    teacher_seconds = time.perf_counter() - started
    model = get_peft_model(
        base,
        LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
            bias="none",
        ),
    )
    model.train()
    action_ids = torch.tensor(action_token_ids(tokenizer))
    encoded = _encode(tokenizer, [e.prompt for e in examples])
    actions = torch.tensor([e.action for e in examples], dtype=torch.long)
    accepted = torch.tensor([e.accepted for e in examples], dtype=torch.bool)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    steps_per_epoch = (len(examples) + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    losses: list[float] = []
    done, stopped_early = 0, False
    for _ in range(config.epochs):
        order = rng.permutation(len(examples))
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size].tolist()
            ids, last = _padded([encoded[i] for i in rows], int(tokenizer.pad_token_id))
            logq = action_log_probs(model, ids, last, action_ids)
            loss = _loss(logq, actions[rows], accepted[rows], teacher[rows], config)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(float(loss.detach()))
            done += 1
            if on_step is not None:
                on_step(done, total)
            if time.perf_counter() - started > config.max_seconds:
                stopped_early = True
                break
        if stopped_early:
            break
    model.eval()
    _save(model, out_dir, model_dir)
    metrics = {
        "examples": len(examples),
        "accepted": int(accepted.sum()),
        "steps": done,
        "planned_steps": total,
        "stopped_early": stopped_early,
        "loss_first_epoch": float(np.mean(losses[:steps_per_epoch])),
        "loss_last_epoch": float(np.mean(losses[-steps_per_epoch:])),
        "teacher_seconds": round(teacher_seconds, 3),
        "train_seconds": round(time.perf_counter() - started, 3),
        "base_model": base_model_version(model_dir),
        "config": config.as_dict(),
    }
    (out_dir / "rhythm_metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return FinetuneResult(out_dir, metrics)


def _loss(
    logq: torch.Tensor,
    actions: torch.Tensor,
    accepted: torch.Tensor,
    teacher: torch.Tensor,
    config: FinetuneConfig,
) -> torch.Tensor:
    chosen = logq.gather(1, actions[:, None])[:, 0]
    # log(1 - q(a)), computed stably from log q(a).
    not_chosen = torch.log1p(-chosen.exp().clamp(max=1.0 - 1e-6))
    reward = torch.where(accepted, -chosen, -config.unlikelihood_weight * not_chosen).mean()
    distill = F.kl_div(logq, teacher, reduction="batchmean")
    return config.reward_weight * reward + config.distill_weight * distill


def _save(model: Any, out_dir: Path, model_dir: Path | None) -> None:
    """Write the peft folder under a temporary name, then rename: a reader never sees half an adapter."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    # vLLM and peft read the base model from the server's own flag / the caller; this only documents it.
    config_path = tmp / "adapter_config.json"
    adapter_config = json.loads(config_path.read_text())
    adapter_config["base_model_name_or_path"] = str(model_folder(model_dir))
    config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


def load_adapter_model(adapter_dir: Path, model_dir: Path | None = None) -> LlamaForCausalLM:
    """The base model with the adapter merged into its weights (what the local backend serves)."""
    from peft import PeftModel

    base, _ = load_base(model_dir)
    peft_model = PeftModel.from_pretrained(base, str(adapter_dir))
    merged = cast(LlamaForCausalLM, peft_model.merge_and_unload())
    merged.eval()  # type: ignore[no-untyped-call]
    return merged


def examples_from_trajectory(
    trajectories: Any,
    user: int,
    steps: range,
    *,
    short_days: int,
    long_days: int,
) -> list[Example]:
    """The simulator's analogue of the logged rows: decision ``t`` of ``user`` with the previous
    ``days x 4`` slots as history (every simulated recommendation is answered)."""
    from domain import ACTIONS, RESPONSES, Response, SlotState
    from policy.prompt import render_prompt
    from policy.training.data import _interaction

    tr = trajectories
    interactions = [
        _interaction(
            int(tr.day[user, t]),
            int(tr.slot[user, t]),
            tr.meters[user, t],
            int(tr.actions[user, t]),
            int(tr.responses[user, t]),
        )
        for t in range(tr.n_steps)
    ]
    examples = []
    for t in steps:
        current: SlotState = interactions[t].state
        short = interactions[max(0, t - 4 * short_days) : t]
        long = interactions[max(0, t - 4 * long_days) : t]
        action = int(tr.actions[user, t])
        examples.append(
            Example(
                prompt=render_prompt(short, current, window_days=short_days),
                teacher_prompt=render_prompt(long, current, window_days=long_days),
                action=action,
                accepted=RESPONSES[int(tr.responses[user, t])] is Response.ACCEPTED,
                propensity=float(tr.probs[user, t, action]),
            )
        )
    assert all(0 <= e.action < len(ACTIONS) for e in examples)
    return examples

"""The pretraining run behind ``rhythm pretrain``: distil the simulator's expert into the tiny policy model.

DPT-style distillation: the data (:mod:`policy.training.data`) are teacher rollouts rendered as production
prompts; every decision in them is supervised with the teacher's full distribution at a soft inverse
temperature (:mod:`policy.training.losses`), and the head is sharpened to the serving temperature at the end.
This module owns what only a full run needs: the optimizer, the learning-rate schedule, the step / wall-clock
budget, the train / validation split and writing the folder with its card (:mod:`policy.training.card`).

The schedule is step-based (``--steps``), so a run is reproducible for a given seed and thread count. On a
busy machine where ``--minutes`` would bind first, the learning-rate schedule follows the clock instead, so
the run still anneals and finishes in time; the model card says when that happened.

Memory: the shipped run (5,000 users) peaked at ~10 GB RSS. Most of it is freed activation buffers that
glibc keeps; ``MALLOC_MMAP_THRESHOLD_=65536`` held a 1,500-user probe at 1.2 GB instead of 4.4 GB but made
every step 1.8x slower, so it is not the default.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import LlamaForCausalLM

from policy.model import build_model, save_model_folder
from policy.tokenizer import action_token_ids, response_token_ids
from policy.training.batching import collate, make_batches
from policy.training.card import model_card, quick_evaluation, write_metrics
from policy.training.config import THREADS, PretrainConfig, PretrainResult
from policy.training.data import generate_sequences
from policy.training.losses import evaluate_kl, training_loss

# Wall-clock seconds kept free at the end of a --minutes budget for the card's evaluation.
EVAL_RESERVE_S = 120.0


@torch.no_grad()
def sharpen_head(model: LlamaForCausalLM, factor: float) -> None:
    """Multiply every output logit by ``factor`` (scales ``lm_head``): a model trained on the teacher at
    ``target_beta`` then answers like the teacher at ``factor * target_beta``. The folder stays a plain Llama,
    so every backend serves the sharpened distribution without knowing about it."""
    model.lm_head.weight.mul_(factor)


def _lr_at(progress: float, step: int, warmup: int, peak: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``peak`` to 5 % as ``progress`` goes 0 → 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def pretrain(
    config: PretrainConfig, out_dir: Path, *, quiet: bool = False, log: Callable[[str], None] | None = None
) -> PretrainResult:
    """Generate teacher data, train the model and write the folder with its model card."""
    torch.set_num_threads(THREADS)
    started = time.monotonic()
    deadline = started + config.minutes * 60.0
    model, tokenizer = build_model(config.spec, config.seed, config.renderer_version)
    action_ids = torch.tensor(action_token_ids(tokenizer))
    response_ids = torch.tensor(response_token_ids(tokenizer))
    pad_id = int(tokenizer.pad_token_id)

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=quiet) as progress:
        data_task = progress.add_task("teacher rollouts", total=config.users, info="")
        sequences = generate_sequences(config, lambda n: progress.advance(data_task, n))
        seconds_data = time.monotonic() - started
        if log is not None:
            log(f"data: {len(sequences)} sequences in {seconds_data:.0f} s")
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2]))
        order = rng.permutation(len(sequences))
        n_val = max(8, int(len(sequences) * config.val_fraction))
        val = [sequences[i] for i in order[:n_val]]
        train = [sequences[i] for i in order[n_val:]]
        val_kl_before, _, _ = evaluate_kl(model, val, pad_id, action_ids, config.target_beta)

        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay
        )
        model.train()
        train_task = progress.add_task("distillation", total=config.steps, info="")
        batches: list[list[int]] = []
        history: list[tuple[int, float]] = []
        losses: list[float] = []
        step, stopped_early = 0, False
        train_started = time.monotonic()
        # The schedule follows the step count; only when the wall-clock cap would bind (a busy machine) does
        # it follow time instead, so a capped run still anneals its learning rate and ends with a finished
        # model rather than a cut-off one. The card records which of the two governed.
        train_budget = max(1.0, deadline - train_started - EVAL_RESERVE_S * bool(config.eval_users))
        warmup = min(config.warmup_steps, config.steps // 5)

        def clock() -> float:
            return (time.monotonic() - train_started) / train_budget

        while step < config.steps and clock() < 1.0:
            if not batches:
                batches = make_batches(train, config.batch_tokens, rng)
                rng.shuffle(batches)
            batch = collate([train[i] for i in batches.pop()], pad_id, config.target_beta)
            by_steps = (step - warmup) / max(1, config.steps - warmup)
            by_time = clock()
            stopped_early = stopped_early or (step >= warmup and by_time > by_steps)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(max(by_steps, by_time), step, warmup, config.lr)
            loss = training_loss(
                model, batch, action_ids, response_ids, config.response_weight, bf16=config.bf16
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % 10 == 0 or step == config.steps:
                history.append((step, float(np.mean(losses[-10:]))))
                progress.update(train_task, completed=step, info=f"loss {history[-1][1]:.3f}")
                if log is not None and step % 50 == 0:
                    log(f"step {step}: loss {history[-1][1]:.4f}, {time.monotonic() - train_started:.0f} s")
        seconds_train = time.monotonic() - train_started
        val_kl_after, _, _ = evaluate_kl(model, val, pad_id, action_ids, config.target_beta)
        sharpen_head(model, config.serve_beta / config.target_beta)
        _, val_mass, val_agreement = evaluate_kl(model, val, pad_id, action_ids, config.serve_beta)
        if log is not None:
            log(f"validation KL {val_kl_before:.4f} -> {val_kl_after:.4f}, agreement {val_agreement:.3f}")

    model.eval()  # type: ignore[no-untyped-call]
    evaluation = (
        quick_evaluation(model, tokenizer, config.eval_users, config.seed) if config.eval_users else {}
    )
    head = float(np.mean(losses[: min(10, len(losses))]))
    tail = float(np.mean(losses[-10:]))
    result = PretrainResult(
        out_dir=out_dir,
        steps_done=step,
        train_loss_first=head,
        train_loss_last=tail,
        val_kl_before=val_kl_before,
        val_kl_after=val_kl_after,
        val_argmax_agreement=val_agreement,
        val_action_mass=val_mass,
        seconds_data=seconds_data,
        seconds_train=seconds_train,
        stopped_early=stopped_early,
        evaluation=evaluation,
        history=history,
    )
    save_model_folder(
        model, tokenizer, out_dir, model_card(config, result, n_train=len(train), n_val=len(val))
    )
    write_metrics(out_dir, config, result)
    return result

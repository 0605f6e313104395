"""``rhythm pretrain``: distil the simulator's expert into the tiny policy model (DPT-style distillation).

1. Roll out the exploring teacher (:mod:`policy.teacher`) on users drawn from a broad profile mix (archetypes,
   continuous in-distribution and out-of-distribution profiles) for 1–5 weeks each.
2. Turn each user's episode, cut at a random length ``L`` (1 … 120 interactions), into ONE prompt rendered
   by the production renderer: the first ``L - 1`` steps as history lines, step ``L`` as ``Current state:``
   and the question. The model's next-token distribution is supervised at every ``recommended`` token (where
   the action of that history line comes next) and at the final ``Recommend an action:``, with the teacher's
   full distribution at that step as a soft target. One forward pass trains all ``L`` decisions.
3. The loss is the cross-entropy of the teacher's distribution against the model's softmax over the *whole*
   vocabulary, so the model also learns to put (almost) all its mass on the 10 action tokens at answer
   positions; the backends renormalise over those tokens, and with near-zero mass elsewhere that choice cannot
   change the answer between the local and the vLLM backend.

The schedule is step-based (``--steps``), so a run is reproducible for a given seed and thread count. On a
busy machine where ``--minutes`` would bind first, the learning-rate schedule follows the clock instead, so
the run still anneals and finishes in time; the model card says when that happened.

Memory: the shipped run (5,000 users) peaked at ~10 GB RSS. Most of it is freed activation buffers that
glibc keeps; ``MALLOC_MMAP_THRESHOLD_=65536`` held a 1,500-user probe at 1.2 GB instead of 4.4 GB but made
every step 1.8x slower, so it is not the default.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
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
from torch.nn import functional as F
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from domain import ACTIONS, RESPONSES, Interaction, Meters, Slot, SlotState
from policy.model import ModelSpec, build_model, save_model_folder
from policy.paths import MODEL_NAME
from policy.prompt import DEFAULT_MAX_INTERACTIONS, render_prompt
from policy.teacher import Episodes, ProfileMix, generate_episodes, softmax_policy
from policy.tokenizer import action_token_ids, build_tokenizer, response_token_ids

THREADS = 2
# Wall-clock seconds kept free at the end of a --minutes budget for the card's evaluation.
EVAL_RESERVE_S = 120.0
WINDOW_CHOICES = (7, 14, 28, 30, 30, 30, 30)
# (weeks, share of users): short episodes dominate early-life behaviour, 5-week ones cover 30-day windows.
WEEK_MIX = ((1, 0.45), (2, 0.3), (3, 0.1), (5, 0.15))


@dataclass
class PretrainConfig:
    seed: int = 0
    # Optimizer steps are what the budget buys: measured on one machine (300 archetype users, expected week-1
    # acceptance), 891 steps on 3,000 users gave 0.664, 828 steps on 8,000 users 0.666, 1,135 steps on 5,000
    # users 0.693. More users past a few thousand add little; every minute not spent stepping costs.
    users: int = 5000
    # Measured on this task: 16k-token batches at 3e-3 reached validation KL 0.61 in 400 steps; 8k-token
    # batches at 6e-3 (ahead after 50 steps) plateaued at KL 0.94 after 700. With bfloat16 autocast a step
    # takes ~0.8 s on a quiet 2-core machine (~1.1 s on a busier one, where the --minutes cap, data and the
    # card's evaluation included, takes over the schedule).
    steps: int = 1200
    batch_tokens: int = 16384
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    particles: int = 64
    # The teacher acts at inverse temperature ``beta``; the model is trained on the teacher's distribution at
    # the softer ``target_beta`` and its head is then scaled to ``serve_beta``. At beta = 40 the target is
    # almost one-hot: it says which action wins but next to nothing about how the others rank, so every
    # decision teaches ~1 comparison. At 10 the target carries
    # the posterior-mean acceptance of all 10 actions (logit differences = 10 x acceptance differences):
    # classic "dark knowledge" distillation, more signal per supervised decision on a CPU budget.
    target_beta: float = 10.0
    beta: float = 40.0
    # The shipped model answers at this inverse temperature (head scaled by serve_beta / target_beta). Sharper
    # than the teacher's 40: on the simulator the teacher's acceptance is flat in beta (0.731 at 40, 0.734 at
    # 200) while the student's sampled mistakes are what delay identification; measured on a model trained at
    # 10 (100 archetype users, week 1): acceptance 0.636 / 0.643 / 0.657 / 0.653 and median identification
    # 12 / 8 / 8 / 6 interactions when served at 30 / 40 / 80 / 160. Exploration in production comes from
    # the service's temperature and exploration floor, not from the model.
    serve_beta: float = 160.0
    max_epsilon: float = 0.3
    val_fraction: float = 0.03
    minutes: float = 19.5
    # Weight of the auxiliary loss on predicting each response in the history. Predicting whether *this*
    # person accepts *this* action in *this* state is exactly the inference the recommendations rest on, and
    # every history line carries that label for free (the teacher targets only say what to do, not why).
    response_weight: float = 0.5
    # Label each response with the simulator's true response distribution of that action in that state
    # instead of the sampled outcome: the same expected gradient with less noise. Measured here (8-minute
    # runs, 200 archetype users): no better than the sampled label (week-1 acceptance 0.574 vs 0.566 at
    # target_beta 40, 0.613 vs 0.638 at 10), so it stays off; the option is kept for longer budgets.
    soft_responses: bool = False
    # bfloat16 autocast for the forward pass (weights, optimizer and the saved model stay float32): ~1.4x
    # more steps per minute on this CPU (AVX-512 BF16).
    bf16: bool = True
    eval_users: int = 60
    # Processes for the teacher rollouts; the data are the same for any count (see generate_sequences).
    data_workers: int = THREADS
    spec: ModelSpec = field(default_factory=ModelSpec)
    mix: ProfileMix = field(default_factory=ProfileMix)


@dataclass
class Sequence:
    ids: np.ndarray  # (T,) token ids
    positions: np.ndarray  # (L,) where a decision is supervised
    mean_accept: np.ndarray  # (L, 10) the teacher's posterior-mean P(accept) of every action
    # Positions of the ``user:`` tokens: the next token is the person's response (ACCEPTED / IGNORED / …).
    response_positions: np.ndarray
    # (L - 1, 3) the label at each of those positions over the response tokens in RESPONSES order: the
    # simulator's true response distribution of that action in that state, or the one-hot of what happened.
    response_targets: np.ndarray


@dataclass
class Batch:
    ids: torch.Tensor  # (B, T) right-padded
    mask: torch.Tensor  # (B, T) 1 on real tokens
    index: torch.Tensor  # (2, D) (row, position) of every decision
    targets: torch.Tensor  # (D, 10) the teacher's distribution at the batch's inverse temperature
    response_index: torch.Tensor  # (2, R) (row, position) of every ``user:`` token
    response_targets: torch.Tensor  # (R, 3)


@dataclass
class PretrainResult:
    out_dir: Path
    steps_done: int
    train_loss_first: float
    train_loss_last: float
    # KL(teacher at target_beta || model) per validation decision: the objective trained, before and after.
    val_kl_before: float
    val_kl_after: float
    # The model as served (head scaled to serve_beta): its argmax agrees with the teacher's this often.
    val_argmax_agreement: float
    val_action_mass: float
    seconds_data: float
    seconds_train: float
    stopped_early: bool
    evaluation: dict[str, dict[str, float]]
    history: list[tuple[int, float]]


def _interaction(day: int, slot: int, meters: np.ndarray, action: int, response: int) -> Interaction:
    state = SlotState(day, Slot(slot), Meters.from_sequence(np.clip(meters, 0.0, 1.0)))
    return Interaction(state, ACTIONS[action], RESPONSES[response])


def episodes_to_sequences(
    episodes: Episodes,
    tokenizer: PreTrainedTokenizerFast,
    rng: np.random.Generator,
    *,
    soft_responses: bool = False,
) -> list[Sequence]:
    """One training sequence per user: the episode cut at a random length, rendered for production."""
    tr = episodes.trajectories
    if not soft_responses:
        response_labels = np.eye(len(RESPONSES))[tr.responses]
    elif tr.p_response is not None:
        response_labels = tr.p_response
    else:
        raise ValueError("soft response labels need trajectories with p_response")
    recommended = tokenizer.convert_tokens_to_ids("recommended")
    user_said = tokenizer.convert_tokens_to_ids("user:")
    prompts, lengths = [], []
    for user in range(tr.n_users):
        length = int(rng.integers(1, min(tr.n_steps, DEFAULT_MAX_INTERACTIONS) + 1))
        # Half the episodes start on another weekday: the dynamics ignore the weekday, real histories do not
        # start on Mondays, and the model must not learn that they do.
        shift = int(rng.integers(0, 7)) if rng.random() < 0.5 else 0
        days = (tr.day[user, :length] + shift) % 7
        history = [
            _interaction(
                int(days[t]),
                int(tr.slot[user, t]),
                tr.meters[user, t],
                int(tr.actions[user, t]),
                int(tr.responses[user, t]),
            )
            for t in range(length - 1)
        ]
        last = length - 1
        current = SlotState(
            int(days[last]),
            Slot(int(tr.slot[user, last])),
            Meters.from_sequence(np.clip(tr.meters[user, last], 0.0, 1.0)),
        )
        window = int(rng.choice(WINDOW_CHOICES))
        prompts.append(render_prompt(history, current, window_days=window))
        lengths.append(length)
    encoded = tokenizer(prompts)["input_ids"]
    sequences = []
    for user, (ids, length) in enumerate(zip(encoded, lengths, strict=True)):
        ids_array = np.asarray(ids, dtype=np.int64)
        positions = np.concatenate([np.flatnonzero(ids_array == recommended), [len(ids) - 1]])
        if len(positions) != length:
            raise AssertionError(f"expected {length} decisions, found {len(positions)}")
        sequences.append(
            Sequence(
                ids_array,
                positions,
                episodes.mean_accept[user, :length].astype(np.float32),
                np.flatnonzero(ids_array == user_said),
                response_labels[user, : length - 1].astype(np.float32),
            )
        )
    return sequences


def make_batches(sequences: list[Sequence], batch_tokens: int, rng: np.random.Generator) -> list[list[int]]:
    """Group sequences of similar length so that ``batch size x longest <= batch_tokens`` (little padding)."""
    order = sorted(range(len(sequences)), key=lambda i: (len(sequences[i].ids), rng.random()))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        size = len(sequences[index].ids)
        if current and max(longest, size) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, size)
    if current:
        batches.append(current)
    return batches


def collate(sequences: list[Sequence], pad_id: int, beta: float) -> Batch:
    """Right-padded ids and mask, flat (row, position) indices of the decisions with the teacher's
    distribution at inverse temperature ``beta``, and of the ``user:`` tokens with their labels."""
    longest = max(len(s.ids) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    rows, cols, response_rows, response_cols = [], [], [], []
    for row, seq in enumerate(sequences):
        ids[row, : len(seq.ids)] = torch.from_numpy(seq.ids)
        mask[row, : len(seq.ids)] = 1
        rows.append(np.full(len(seq.positions), row))
        cols.append(seq.positions)
        response_rows.append(np.full(len(seq.response_positions), row))
        response_cols.append(seq.response_positions)
    return Batch(
        ids,
        mask,
        torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]).astype(np.int64)),
        torch.from_numpy(
            softmax_policy(np.concatenate([s.mean_accept for s in sequences]), beta).astype(np.float32)
        ),
        torch.from_numpy(
            np.stack([np.concatenate(response_rows), np.concatenate(response_cols)]).astype(np.int64)
        ),
        torch.from_numpy(np.concatenate([s.response_targets for s in sequences]).astype(np.float32)),
    )


def decision_log_probs(
    model: LlamaForCausalLM, ids: torch.Tensor, mask: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """Full-vocabulary log-probabilities ``(D, V)`` at the decision positions (lm_head only where needed)."""
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    return F.log_softmax(model.lm_head(hidden[index[0], index[1]]).float(), dim=-1)


def training_loss(
    model: LlamaForCausalLM,
    batch: Batch,
    action_ids: torch.Tensor,
    response_ids: torch.Tensor,
    response_weight: float,
    *,
    bf16: bool = False,
) -> torch.Tensor:
    """Soft cross-entropy against the teacher at every decision, plus ``response_weight`` times the
    cross-entropy of every response label in the history; one forward pass for both.

    No attention mask: the batch is right-padded and attention is causal, so no real token ever sees a pad,
    and without a mask SDPA takes its fused causal kernel (measured ~8 % faster per step here).
    """
    with_responses = response_weight > 0.0 and batch.response_index.shape[1] > 0
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = model.model(input_ids=batch.ids).last_hidden_state
        logits = model.lm_head(hidden[batch.index[0], batch.index[1]])
        if with_responses:
            response_logits = model.lm_head(hidden[batch.response_index[0], batch.response_index[1]])
    # The losses in float32, outside autocast.
    loss = soft_cross_entropy(F.log_softmax(logits.float(), dim=-1), batch.targets, action_ids)
    if with_responses:
        response_logp = F.log_softmax(response_logits.float(), dim=-1)
        loss = loss + response_weight * soft_cross_entropy(
            response_logp, batch.response_targets, response_ids
        )
    return loss


def soft_cross_entropy(logp: torch.Tensor, targets: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``targets`` (a distribution over ``token_ids``) against full-vocabulary ``logp``."""
    return -(targets * logp[:, token_ids]).sum(dim=-1).mean()


@torch.no_grad()
def evaluate_kl(
    model: LlamaForCausalLM,
    sequences: list[Sequence],
    pad_id: int,
    action_ids: torch.Tensor,
    beta: float,
) -> tuple[float, float, float]:
    """Per decision: mean KL(teacher at ``beta`` || model over actions), the model's mass on the action
    tokens, and how often the model's most likely action is the teacher's."""
    model.eval()  # type: ignore[no-untyped-call]
    kl_sum, mass_sum, agree, count = 0.0, 0.0, 0, 0
    for start in range(0, len(sequences), 16):
        batch = collate(sequences[start : start + 16], pad_id, beta)
        targets = batch.targets
        logp = decision_log_probs(model, batch.ids, batch.mask, batch.index)[:, action_ids]
        mass = logp.logsumexp(dim=-1)
        logq = logp - mass[:, None]
        entropy = -(targets * targets.clamp_min(1e-12).log()).sum(dim=-1)
        kl_sum += float((-(targets * logq).sum(dim=-1) - entropy).sum())
        mass_sum += float(mass.exp().sum())
        agree += int((logq.argmax(dim=-1) == targets.argmax(dim=-1)).sum())
        count += len(targets)
    model.train()
    return kl_sum / count, mass_sum / count, agree / count


@torch.no_grad()
def sharpen_head(model: LlamaForCausalLM, factor: float) -> None:
    """Multiply every output logit by ``factor`` (scales ``lm_head``): a model trained on the teacher at
    ``target_beta`` then answers like the teacher at ``factor * target_beta``. The folder stays a plain Llama,
    so every backend serves the sharpened distribution without knowing about it."""
    model.lm_head.weight.mul_(factor)


@dataclass(frozen=True)
class _Chunk:
    """One slice of the teacher rollouts: ``users`` users for ``weeks`` weeks, part ``part`` of the
    ``mix_index``-th entry of WEEK_MIX; its seeds derive from that position."""

    index: int
    users: int
    weeks: int
    mix_index: int
    part: int


def _chunks(config: PretrainConfig) -> list[_Chunk]:
    chunks: list[_Chunk] = []
    chunk = 500
    for mix_index, (weeks, share) in enumerate(WEEK_MIX):
        remaining, part = round(config.users * share), 0
        while remaining > 0:
            n = min(chunk, remaining)
            chunks.append(_Chunk(len(chunks), n, weeks, mix_index, part))
            remaining -= n
            part += 1
    return chunks


def _chunk_sequences(config: PretrainConfig, chunk: _Chunk) -> list[Sequence]:
    """Teacher rollouts of one chunk as training sequences (runs in a worker process)."""
    episodes = generate_episodes(
        chunk.users,
        chunk.weeks,
        seed=config.seed * 10_007 + chunk.mix_index * 1_000 + chunk.part,
        n_particles=config.particles,
        mix=config.mix,
        beta=config.beta,
        max_epsilon=config.max_epsilon,
    )
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1, chunk.mix_index, chunk.part]))
    return episodes_to_sequences(episodes, build_tokenizer(), rng, soft_responses=config.soft_responses)


def generate_sequences(config: PretrainConfig, on_chunk: Callable[[int], None]) -> list[Sequence]:
    """Teacher rollouts for ``config.users`` users over the week mix, as training sequences.

    Chunks are independent (each has its own seeds), so they run in ``config.data_workers`` processes and
    the result does not depend on how many. The particle filter is single-threaded numpy, so on 2 cores the
    minutes saved on data go to training steps; the longest chunks (5-week episodes) are submitted first so
    that neither worker is left with one at the end. Workers are spawned, so a script calling this needs the
    usual ``if __name__ == "__main__":`` guard (``rhythm pretrain`` has it)."""
    chunks = _chunks(config)
    results: dict[int, list[Sequence]] = {}
    workers = min(config.data_workers, len(chunks))
    if workers <= 1:
        for chunk in chunks:
            results[chunk.index] = _chunk_sequences(config, chunk)
            on_chunk(chunk.users)
    else:
        # spawn, not fork: the parent has already initialised torch's thread pools.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            by_size = sorted(chunks, key=lambda c: c.users * c.weeks, reverse=True)
            futures = {pool.submit(_chunk_sequences, config, chunk): chunk for chunk in by_size}
            for future in as_completed(futures):
                results[futures[future].index] = future.result()
                on_chunk(futures[future].users)
    return [sequence for index in range(len(chunks)) for sequence in results[index]]


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
    model, tokenizer = build_model(config.spec, config.seed)
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
    (out_dir / "training_metrics.json").write_text(json.dumps(_metrics_json(config, result), indent=2) + "\n")
    return result


def quick_evaluation(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, users: int, seed: int
) -> dict[str, dict[str, float]]:
    """Week-1 acceptance (and identification on archetypes) of the trained model beside the simulator's
    reference policies, on the same users and environment seed (for the model card)."""
    from policy.local import LocalPolicyModel
    from policy.sim_policy import ModelPolicy
    from sim.bench import evaluate
    from sim.policies import make_policy
    from sim.profiles import sample_profiles
    from sim.rollout import rollout

    local = LocalPolicyModel(model, tokenizer, model_name=MODEL_NAME)
    results: dict[str, dict[str, float]] = {}
    for mode in ("archetypes", "continuous", "ood"):
        profiles = sample_profiles(np.random.default_rng(np.random.SeedSequence([seed, 3])), users, mode)
        row: dict[str, float] = {}
        for name in ("random", "thompson", "bayes", "particle", "model"):
            policy = ModelPolicy(local) if name == "model" else make_policy(name, profiles)
            report = evaluate(rollout(policy, profiles, 1, seed + 11))
            row[name] = float(report["acceptance"])
            if mode == "archetypes" and name in ("bayes", "model"):
                median = report["identify_median"]
                row[f"{name}_identify_median"] = math.inf if median is None else float(median)
        results[mode] = row
        local.cache.clear()
    return results


def _metrics_json(config: PretrainConfig, result: PretrainResult) -> dict[str, object]:
    data = asdict(result)
    data["out_dir"] = str(result.out_dir)
    data["config"] = asdict(config)
    return data


def reproduce_command(config: PretrainConfig) -> str:
    default = PretrainConfig()
    parts = ["rhythm pretrain", f"--seed {config.seed}"]
    names = (
        "users",
        "steps",
        "batch_tokens",
        "lr",
        "particles",
        "beta",
        "target_beta",
        "serve_beta",
        "response_weight",
        "soft_responses",
        "bf16",
        "minutes",
        "eval_users",
    )
    for name in names:
        value = getattr(config, name)
        if value != getattr(default, name):
            flag = name.replace("_", "-")
            if isinstance(value, bool):
                parts.append(f"--{flag}" if value else f"--no-{flag}")
            else:
                parts.append(f"--{flag} {value}")
    return " ".join(parts)


def model_card(config: PretrainConfig, result: PretrainResult, *, n_train: int, n_val: int) -> str:
    spec, mix = config.spec, config.mix
    weeks = ", ".join(f"{w}w: {share:.0%}" for w, share in WEEK_MIX)
    early = (
        " — the --minutes cap governed the learning-rate schedule for part of the run, so another machine"
        " reproduces this model closely but not bit for bit"
        if result.stopped_early
        else ""
    )
    lines = [
        f"# {MODEL_NAME}",
        "",
        "A tiny `LlamaForCausalLM` (float32, word-level tokenizer, no custom code) that reads a person's",
        "recent Rhythm history in its prompt and answers `Recommend an action:` with one of the 10 action",
        "tokens. Its distribution over those tokens is the recommendation distribution.",
        "Prompt format: `docs/prompt-format.md`.",
        "",
        "## Architecture",
        f"- hidden {spec.hidden_size}, {spec.num_hidden_layers} layers, {spec.num_attention_heads} heads, "
        f"MLP {spec.intermediate_size}, {spec.max_position_embeddings} positions, untied embeddings",
        "",
        "## Training data (simulator, `policy/teacher.py`)",
        f"- {n_train} training / {n_val} validation episodes, one user each; episode length {weeks}; "
        "each cut at a random length of 1–120 interactions",
        f"- users: {mix.archetypes:.0%} archetypes, {mix.continuous:.0%} continuous (in-distribution), "
        f"{mix.ood:.0%} out-of-distribution profiles",
        f"- teacher: particle posterior, {config.particles} particles per user (the 3 archetypes with "
        f"{mix.archetypes:.0%} prior mass, the rest continuous/ood), acting by",
        f"  softmax(beta x posterior-mean P(accept)), beta = {config.beta}",
        "- behaviour: teacher mixed with uniform; ε = 0 for a third of users, "
        f"else U(0, {config.max_epsilon})",
        "- targets: the teacher's full distribution at every decision at the softer inverse temperature "
        f"{config.target_beta:g} (soft cross-entropy, full vocabulary); the output head is then scaled by "
        f"{config.serve_beta / config.target_beta:g} so the model answers at beta = {config.serve_beta:g}",
        "- auxiliary: cross-entropy on every response in the history, weight "
        f"{config.response_weight}, labelled with "
        + (
            "the simulator's true response distribution of that action in that state"
            if config.soft_responses
            else "the sampled response"
        ),
        "",
        "## Settings",
        f"- seed {config.seed}; {result.steps_done} steps (planned {config.steps}); "
        f"≤ {config.batch_tokens} tokens per batch",
        f"- AdamW lr {config.lr} (warm-up {config.warmup_steps}, cosine to 5 %), weight decay "
        f"{config.weight_decay}, grad clip 1.0, torch threads {THREADS}"
        + (", bfloat16 autocast" if config.bf16 else ""),
        f"- time: {result.seconds_data:.0f} s data, {result.seconds_train:.0f} s training "
        f"on {platform.machine()}{early}",
        "",
        "## Metrics",
        f"- training loss (soft cross-entropy + auxiliary) {result.train_loss_first:.3f} → "
        f"{result.train_loss_last:.3f}",
        f"- validation KL(teacher ‖ model) per decision at the training beta = {config.target_beta:g}: "
        f"{result.val_kl_before:.3f} → {result.val_kl_after:.3f}",
        f"- as served (beta = {config.serve_beta:g}), the model's most likely action is the teacher's at "
        f"{result.val_argmax_agreement:.1%} of validation decisions",
        f"- probability mass on the action tokens at decisions {result.val_action_mass:.4f}",
    ]
    if result.evaluation:
        lines += [
            "",
            f"Week-1 acceptance rate, {config.eval_users} simulated users per profile family "
            "(same seed for all policies):",
            "",
            "| profiles | random | thompson | bayes (archetypes) | particle | this model |",
            "|---|---|---|---|---|---|",
        ]
        for mode, row in result.evaluation.items():
            lines.append(
                f"| {mode} | {row['random']:.3f} | {row['thompson']:.3f} | {row['bayes']:.3f} | "
                f"{row['particle']:.3f} | {row['model']:.3f} |"
            )
        arch = result.evaluation.get("archetypes", {})
        if "model_identify_median" in arch:
            lines += [
                "",
                "Median interactions to identification on archetypes (sim.bench: behaviour within 10 % of "
                f"the oracle): this model {arch['model_identify_median']:g}, exact Bayes "
                f"{arch['bayes_identify_median']:g}.",
            ]
    lines += ["", "## Reproduce", "", "```", reproduce_command(config), "```", ""]
    return "\n".join(lines)

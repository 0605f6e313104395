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
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
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

from policy.model import ModelSpec, build_model, save_model_folder
from policy.paths import MODEL_NAME
from policy.prompt import DEFAULT_MAX_INTERACTIONS, render_prompt
from policy.teacher import Episodes, ProfileMix, generate_episodes
from policy.tokenizer import action_token_ids
from sim.domain import ACTIONS, RESPONSES, Interaction, Meters, Slot, SlotState

THREADS = 2
# Wall-clock seconds kept free at the end of a --minutes budget for the card's evaluation.
EVAL_RESERVE_S = 120.0
WINDOW_CHOICES = (7, 14, 28, 30, 30, 30, 30)
# (weeks, share of users): short episodes dominate early-life behaviour, 5-week ones cover 30-day windows.
WEEK_MIX = ((1, 0.35), (2, 0.3), (3, 0.15), (5, 0.2))


@dataclass
class PretrainConfig:
    seed: int = 0
    users: int = 3000
    steps: int = 700
    # Measured on this task: 16k-token batches at 3e-3 reached validation KL 0.61 in 400 steps; 8k-token
    # batches at 6e-3 (ahead after 50 steps) plateaued at KL 0.94 after 700. With the response loss and 700
    # steps (about 13 min of training on a quiet 2-core machine) KL reached 0.54.
    batch_tokens: int = 16384
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    particles: int = 64
    beta: float = 40.0
    max_epsilon: float = 0.3
    val_fraction: float = 0.03
    minutes: float = 20.0
    # Weight of the auxiliary loss on predicting each response in the history. Predicting whether *this*
    # person accepts *this* action in *this* state is exactly the inference the recommendations rest on, and
    # every history line carries that label for free (the teacher targets only say what to do, not why).
    response_weight: float = 0.5
    eval_users: int = 60
    spec: ModelSpec = field(default_factory=ModelSpec)
    mix: ProfileMix = field(default_factory=ProfileMix)


@dataclass
class Sequence:
    ids: np.ndarray  # (T,) token ids
    positions: np.ndarray  # (L,) where a decision is supervised
    targets: np.ndarray  # (L, 10) teacher distributions
    # Positions of the ``user:`` tokens: the next token is the person's response (ACCEPTED / IGNORED / …).
    response_positions: np.ndarray


@dataclass
class PretrainResult:
    out_dir: Path
    steps_done: int
    train_loss_first: float
    train_loss_last: float
    val_kl_before: float
    val_kl_after: float
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
    episodes: Episodes, tokenizer: PreTrainedTokenizerFast, rng: np.random.Generator
) -> list[Sequence]:
    """One training sequence per user: the episode cut at a random length, rendered for production."""
    tr = episodes.trajectories
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
                episodes.targets[user, :length].astype(np.float32),
                np.flatnonzero(ids_array == user_said),
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


def collate(
    sequences: list[Sequence], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids and mask, flat (row, position) indices of the decisions and their targets, and flat
    (row, position) indices of the ``user:`` tokens (their next token is the response label)."""
    longest = max(len(s.ids) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    rows, cols, targets, response_rows, response_cols = [], [], [], [], []
    for row, seq in enumerate(sequences):
        ids[row, : len(seq.ids)] = torch.from_numpy(seq.ids)
        mask[row, : len(seq.ids)] = 1
        rows.append(np.full(len(seq.positions), row))
        cols.append(seq.positions)
        targets.append(seq.targets)
        response_rows.append(np.full(len(seq.response_positions), row))
        response_cols.append(seq.response_positions)
    index = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]))
    response_index = torch.from_numpy(
        np.stack([np.concatenate(response_rows), np.concatenate(response_cols)]).astype(np.int64)
    )
    return ids, mask, index, torch.from_numpy(np.concatenate(targets)), response_index


def decision_log_probs(
    model: LlamaForCausalLM, ids: torch.Tensor, mask: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """Full-vocabulary log-probabilities ``(D, V)`` at the decision positions (lm_head only where needed)."""
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    return F.log_softmax(model.lm_head(hidden[index[0], index[1]]).float(), dim=-1)


def training_loss(
    model: LlamaForCausalLM,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    action_ids: torch.Tensor,
    response_weight: float,
) -> torch.Tensor:
    """Soft cross-entropy against the teacher at every decision, plus ``response_weight`` times the
    next-token cross-entropy of every response in the history; one forward pass for both."""
    ids, mask, index, targets, response_index = batch
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    logp = F.log_softmax(model.lm_head(hidden[index[0], index[1]]).float(), dim=-1)
    loss = soft_cross_entropy(logp, targets, action_ids)
    if response_weight > 0.0 and response_index.shape[1] > 0:
        rows, cols = response_index[0], response_index[1]
        response_logits = model.lm_head(hidden[rows, cols]).float()
        loss = loss + response_weight * F.cross_entropy(response_logits, ids[rows, cols + 1])
    return loss


def soft_cross_entropy(logp: torch.Tensor, targets: torch.Tensor, action_ids: torch.Tensor) -> torch.Tensor:
    return -(targets * logp[:, action_ids]).sum(dim=-1).mean()


@torch.no_grad()
def evaluate_kl(
    model: LlamaForCausalLM, sequences: list[Sequence], pad_id: int, action_ids: torch.Tensor
) -> tuple[float, float]:
    """Mean KL(teacher || model over actions) per decision, and the model's mass on the action tokens."""
    model.eval()  # type: ignore[no-untyped-call]
    kl_sum, mass_sum, count = 0.0, 0.0, 0
    for start in range(0, len(sequences), 16):
        ids, mask, index, targets, _ = collate(sequences[start : start + 16], pad_id)
        logp = decision_log_probs(model, ids, mask, index)[:, action_ids]
        mass = logp.logsumexp(dim=-1)
        logq = logp - mass[:, None]
        entropy = -(targets * targets.clamp_min(1e-12).log()).sum(dim=-1)
        kl_sum += float((-(targets * logq).sum(dim=-1) - entropy).sum())
        mass_sum += float(mass.exp().sum())
        count += len(targets)
    model.train()
    return kl_sum / count, mass_sum / count


def generate_sequences(
    config: PretrainConfig, tokenizer: PreTrainedTokenizerFast, on_chunk: Callable[[int], None]
) -> list[Sequence]:
    """Teacher rollouts for ``config.users`` users over the week mix, as training sequences."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    sequences: list[Sequence] = []
    chunk = 500
    for chunk_index, (weeks, share) in enumerate(WEEK_MIX):
        remaining = round(config.users * share)
        part = 0
        while remaining > 0:
            n = min(chunk, remaining)
            episodes = generate_episodes(
                n,
                weeks,
                seed=config.seed * 10_007 + chunk_index * 1_000 + part,
                n_particles=config.particles,
                mix=config.mix,
                beta=config.beta,
                max_epsilon=config.max_epsilon,
            )
            sequences.extend(episodes_to_sequences(episodes, tokenizer, rng))
            remaining -= n
            part += 1
            on_chunk(n)
    return sequences


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
        sequences = generate_sequences(config, tokenizer, lambda n: progress.advance(data_task, n))
        seconds_data = time.monotonic() - started
        if log is not None:
            log(f"data: {len(sequences)} sequences in {seconds_data:.0f} s")
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2]))
        order = rng.permutation(len(sequences))
        n_val = max(8, int(len(sequences) * config.val_fraction))
        val = [sequences[i] for i in order[:n_val]]
        train = [sequences[i] for i in order[n_val:]]
        val_kl_before, _ = evaluate_kl(model, val, pad_id, action_ids)

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
            batch = collate([train[i] for i in batches.pop()], pad_id)
            by_steps = (step - warmup) / max(1, config.steps - warmup)
            by_time = clock()
            stopped_early = stopped_early or (step >= warmup and by_time > by_steps)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(max(by_steps, by_time), step, warmup, config.lr)
            loss = training_loss(model, batch, action_ids, config.response_weight)
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
        val_kl_after, val_mass = evaluate_kl(model, val, pad_id, action_ids)

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
        "response_weight",
        "minutes",
        "eval_users",
    )
    for name in names:
        value = getattr(config, name)
        if value != getattr(default, name):
            parts.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(parts)


def model_card(config: PretrainConfig, result: PretrainResult, *, n_train: int, n_val: int) -> str:
    spec, mix = config.spec, config.mix
    weeks = ", ".join(f"{w}w: {share:.0%}" for w, share in WEEK_MIX)
    early = " — the --minutes cap governed the schedule (busy machine)" if result.stopped_early else ""
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
        "- targets: the teacher's full distribution at every decision (soft cross-entropy, full vocabulary)",
        "- auxiliary: next-token cross-entropy on every response in the history, weight "
        f"{config.response_weight}",
        "",
        "## Settings",
        f"- seed {config.seed}; {result.steps_done} steps (planned {config.steps}); "
        f"≤ {config.batch_tokens} tokens per batch",
        f"- AdamW lr {config.lr} (warm-up {config.warmup_steps}, cosine to 5 %), weight decay "
        f"{config.weight_decay}, grad clip 1.0, torch threads {THREADS}",
        f"- time: {result.seconds_data:.0f} s data, {result.seconds_train:.0f} s training "
        f"on {platform.machine()}{early}",
        "",
        "## Metrics",
        f"- training loss (soft cross-entropy + auxiliary) {result.train_loss_first:.3f} → "
        f"{result.train_loss_last:.3f}",
        f"- validation KL(teacher ‖ model) per decision {result.val_kl_before:.3f} → "
        f"{result.val_kl_after:.3f}",
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

"""The model card: the folder's ``README.md``, its ``training_metrics.json`` and the week-1 check they report.

:func:`quick_evaluation` runs the freshly trained model as a simulator policy (:mod:`policy.sim_policy`)
beside the simulator's reference policies; it is the only part of ``policy.training`` that does, and nothing
it imports imports this package back. :func:`reproduce_command` prints the ``rhythm pretrain`` flags that
differ from the defaults; the output folder is not among them, since reproducing a model should not overwrite
the one it reproduces (``rhythm pretrain`` writes under ``var/models/`` unless told otherwise).
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from policy.local import LocalPolicyModel
from policy.paths import MODEL_NAME
from policy.sim_policy import ModelPolicy
from policy.training.config import THREADS, WEEK_MIX, PretrainConfig, PretrainResult
from sim.bench import evaluate
from sim.policies import make_policy
from sim.profiles import sample_profiles
from sim.rollout import rollout


def quick_evaluation(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, users: int, seed: int
) -> dict[str, dict[str, float]]:
    """Week-1 acceptance (and identification on archetypes) of the trained model beside the simulator's
    reference policies, on the same users and environment seed (for the model card)."""
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


def metrics_json(config: PretrainConfig, result: PretrainResult) -> dict[str, object]:
    """The run's result and full configuration, as written to ``training_metrics.json``."""
    data = asdict(result)
    data["out_dir"] = str(result.out_dir)
    data["config"] = asdict(config)
    return data


def reproduce_command(config: PretrainConfig) -> str:
    """``rhythm pretrain`` with the seed and every flag that differs from the defaults."""
    default = PretrainConfig()
    parts = ["rhythm pretrain", f"--seed {config.seed}"]
    names = (
        "recipe",
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
        "renderer_version",
    )
    for name in names:
        value = getattr(config, name)
        if value != getattr(default, name):
            flag = name.replace("_", "-")
            if isinstance(value, bool):
                parts.append(f"--{flag}" if value else f"--no-{flag}")
            else:
                parts.append(f"--{flag} {value}")
    if config.renderer_version >= 2 and config.missing != default.missing:
        plan = config.missing
        parts.append(f"--missing {plan.no_device}/{plan.some}/{plan.gaps}/{plan.max_gap_rate}")
    return " ".join(parts)


def model_card(config: PretrainConfig, result: PretrainResult, *, n_train: int, n_val: int) -> str:
    """The folder's ``README.md``: architecture, data, settings, metrics and the command to reproduce it."""
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
        *(
            [
                f"- prompt text version {config.renderer_version}: a missing meter is its own token "
                f"(`Vitality=?`); per user, no meters at all {config.missing.no_device:.0%}, a random subset "
                f"missing throughout {config.missing.some:.0%}, and gaps at a rate U(0, "
                f"{config.missing.max_gap_rate}) for {config.missing.gaps:.0%} of users; the targets are "
                "those of the full state"
            ]
            if config.renderer_version >= 2
            else []
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
    lines += [
        "It writes a new folder under `var/models/`; `--out policy/weights/rhythm-tiny --force` would",
        "replace the shipped model.",
        "",
    ]
    return "\n".join(lines)


def write_metrics(out_dir: Path, config: PretrainConfig, result: PretrainResult) -> None:
    """Write ``training_metrics.json`` next to the model card of a saved folder."""
    (out_dir / "training_metrics.json").write_text(json.dumps(metrics_json(config, result), indent=2) + "\n")

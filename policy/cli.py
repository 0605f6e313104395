"""Command-line entry points of the policy package: ``rhythm pretrain`` and ``rhythm bench local-model``.

``app/cli.py`` attaches :func:`pretrain` as a command. When this module is imported, ``bench local-model``
joins the simulator's ``bench`` group (:data:`sim.cli.bench_app`), so all benchmarks live under one command,
and the model's simulator policies (``model``, ``base-model``) join the simulator's registry, so
``rhythm bench personalization --policy model`` finds them; ``policy`` may import ``sim``, never the other way
round. Heavy imports stay inside the functions.

``rhythm pretrain`` writes a new folder under ``var/models/`` unless ``--out`` names one, and refuses a
non-empty folder without ``--force``: the shipped ``policy/weights/rhythm-tiny/`` is tracked, and an
18-minute run must not replace it by accident.
"""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from policy.paths import MODEL_NAME, SHIPPED_MODEL_DIR, SHIPPED_SEED

# Relative to the working directory, like the service's other defaults under ./var.
MODELS_DIR = Path("var") / "models"


def default_out_dir(seed: int, now: datetime | None = None) -> Path:
    """``var/models/rhythm-tiny-seed<S>-<UTC time>``: a fresh folder per run, named by seed and time."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return MODELS_DIR / f"{MODEL_NAME}-seed{seed}-{stamp}"


def _check_out_dir(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is a file, not a folder", param_hint="--out")
    if force or not out.is_dir() or not any(out.iterdir()):
        return
    what = "the shipped model" if out.resolve() == SHIPPED_MODEL_DIR else "a non-empty folder"
    raise typer.BadParameter(f"{out} is {what}; pass --force to overwrite it", param_hint="--out")


def pretrain(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Model folder to write (default: a new var/models/rhythm-tiny-seed<S>-<time>). "
            "Replacing the shipped model takes --out policy/weights/rhythm-tiny --force."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a non-empty --out folder.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of data, initialisation and batching.")] = SHIPPED_SEED,
    recipe: Annotated[
        str | None,
        typer.Option(help="teacher (distil the particle teacher) or dpt (label with the true best action)."),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (the schedule).")] = None,
    users: Annotated[int | None, typer.Option(help="Simulated users (one episode each).")] = None,
    minutes: Annotated[float | None, typer.Option(help="Safety cap on the whole run.")] = None,
    batch_tokens: Annotated[int | None, typer.Option(help="Tokens per batch (rows x longest).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    particles: Annotated[int | None, typer.Option(help="Teacher particles per user.")] = None,
    beta: Annotated[float | None, typer.Option(help="Inverse temperature the teacher acts at.")] = None,
    target_beta: Annotated[
        float | None, typer.Option(help="Softer inverse temperature of the training targets.")
    ] = None,
    serve_beta: Annotated[
        float | None, typer.Option(help="Inverse temperature the shipped model answers at.")
    ] = None,
    response_weight: Annotated[
        float | None, typer.Option(help="Weight of the auxiliary loss on the history's responses.")
    ] = None,
    soft_responses: Annotated[
        bool | None,
        typer.Option(help="Label responses with the simulator's true response distribution."),
    ] = None,
    bf16: Annotated[bool | None, typer.Option(help="bfloat16 autocast in the forward pass.")] = None,
    eval_users: Annotated[
        int | None, typer.Option(help="Users per profile family in the card's check.")
    ] = None,
    missing: Annotated[
        str | None,
        typer.Option(
            help="With --renderer-version 2: shares of users with no meters, a subset missing, and gaps, and "
            "the highest gap rate, as NO_DEVICE/SOME/GAPS/MAX_GAP_RATE (default 0.15/0.15/0.2/0.3)."
        ),
    ] = None,
    renderer_version: Annotated[
        int | None,
        typer.Option(
            help="Prompt text version the model reads; 2 gives a missing meter its own token and trains "
            "with missing meters (no device, some meters, gaps)."
        ),
    ] = None,
) -> None:
    """Pretrain the policy model from the simulator's expert and write the model folder and its card."""
    out = default_out_dir(seed) if out is None else out
    # Before the heavy imports and the run: a refusal costs nothing.
    _check_out_dir(out, force=force)
    if missing is not None and (renderer_version or 1) < 2:
        # Version 1 has no word for a missing meter, so it trains with every meter shown: the plan would be
        # dropped without a word.
        raise typer.BadParameter("needs --renderer-version 2", param_hint="--missing")

    from policy.training.config import PretrainConfig
    from policy.training.pretrain import pretrain as run

    overrides: dict[str, object] = {
        "seed": seed,
        "recipe": recipe,
        "steps": steps,
        "users": users,
        "minutes": minutes,
        "batch_tokens": batch_tokens,
        "lr": lr,
        "particles": particles,
        "beta": beta,
        "target_beta": target_beta,
        "serve_beta": serve_beta,
        "response_weight": response_weight,
        "soft_responses": soft_responses,
        "bf16": bf16,
        "eval_users": eval_users,
        "renderer_version": renderer_version,
    }
    if missing is not None:
        from policy.training.config import MissingMeters

        try:
            no_device, some, gaps, max_gap_rate = (float(x) for x in missing.split("/"))
            overrides["missing"] = MissingMeters(no_device, some, gaps, max_gap_rate)
        except (TypeError, ValueError) as exc:
            raise typer.BadParameter(
                f"expected NO_DEVICE/SOME/GAPS/MAX_GAP_RATE, shares in [0, 1]: {exc}", param_hint="--missing"
            ) from None
    config = PretrainConfig(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    # Without a terminal the progress bar cannot redraw; print a line per 50 steps instead.
    log = None if sys.stderr.isatty() else (lambda line: typer.echo(line, err=True))
    result = run(config, out, log=log)
    typer.echo(
        f"wrote {out}: {result.steps_done} steps, loss {result.train_loss_first:.3f} -> "
        f"{result.train_loss_last:.3f}, validation KL {result.val_kl_before:.3f} -> {result.val_kl_after:.3f}"
    )
    for mode, row in result.evaluation.items():
        typer.echo(f"  week 1 on {mode}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))


def bench_local_model(
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="Model folder (default: shipped).")
    ] = None,
    days: Annotated[int, typer.Option(help="History length in days (4 interactions a day).")] = 30,
    users: Annotated[int, typer.Option(help="Users taking turns.")] = 4,
    requests: Annotated[int, typer.Option(help="Measured requests per user.")] = 28,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="torch intra-op threads (the service uses 1).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a latency histogram PNG here.")] = None,
) -> None:
    """Latency of the local backend on a growing 30-day history: prefix cache vs full prefill."""
    from policy.bench import plot_latency, run_local_model_bench

    report = run_local_model_bench(
        model_dir, days=days, users=users, requests_per_user=requests, seed=seed, threads=threads
    )
    summary = report.summary()
    if plot is not None:
        plot_latency(report, plot)
        summary["plot"] = str(plot)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"{summary['requests']} requests, history {report.history_interactions[0]}–"
        f"{report.history_interactions[1]} interactions ({report.prompt_tokens[0]}–{report.prompt_tokens[1]} "
        f"tokens), {summary['torch_threads']} torch threads"
    )
    typer.echo(f"  prefix cache : p50 {summary['cached_p50_ms']} ms, p99 {summary['cached_p99_ms']} ms")
    typer.echo(f"  full prefill : p50 {summary['uncached_p50_ms']} ms, p99 {summary['uncached_p99_ms']} ms")
    typer.echo(f"  speed-up p50 : {summary['speedup_p50']}x, cache hit rate {summary['cache_hit_rate']}")


def bench_finetune(
    users: Annotated[int, typer.Option(help="Simulated users per profile mode.")] = 4,
    modes: Annotated[
        str, typer.Option(help="Profile modes, comma-separated.")
    ] = "archetypes,continuous,ood,heldout-sparse,heldout-rules",
    epochs: Annotated[int, typer.Option(help="Fine-tune epochs per user.")] = 6,
    objective: Annotated[
        str,
        typer.Option(
            help="combined (reward-weighted + unlikelihood + distillation), reward (no distillation) "
            "or distill (distillation only)."
        ),
    ] = "combined",
    reward_weight: Annotated[
        float | None, typer.Option(min=0.0, help="Override the objective's reward-term weight.")
    ] = None,
    distill_weight: Annotated[
        float | None, typer.Option(min=0.0, help="Override the objective's distillation weight.")
    ] = None,
    seed: Annotated[
        int, typer.Option(help="An evaluation seed (100-999), not one the model trained on.")
    ] = 123,
    min_ess: Annotated[float, typer.Option(help="The gate's minimum effective sample size.")] = 20.0,
    max_halfwidth: Annotated[
        float, typer.Option(help="Widest interval half-width one user's gate decides on alone (else pooled).")
    ] = 0.1,
    workers: Annotated[int, typer.Option(min=1, max=8, help="Processes training the adapters.")] = 1,
    adapter_answers: Annotated[
        str,
        typer.Option(
            help="Answers combined with an adapter: all (as the service does, also those the adapter trained "
            "on) or since_training (only those after its training rows)."
        ),
    ] = "all",
    adapter_sharpness: Annotated[
        str,
        typer.Option(
            help="Extra week-5 arms: the adapter combined with the answers at these sharpness values in "
            "(0, 1], comma-separated (the service's is RHYTHM_EVIDENCE_SHARPNESS)."
        ),
    ] = "",
    max_train_seconds: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Stop each training after this many seconds, as the job does (0: never; every adapter then "
            "trains its planned steps, so results do not depend on the machine's load).",
        ),
    ] = 55.0,
    throughput: Annotated[bool, typer.Option(help="Also time the sweep with 1 and 2 workers.")] = True,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of week-5 acceptance per arm here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Week-5 acceptance of adapter + 7 days vs base + 30 days vs base + 7 days, each with the person's
    answers combined in (as served) and without (same users, 4 logged weeks), the offline gate's accuracy,
    training seconds per user and the sweep's throughput."""
    import torch
    from rich.console import Console

    from policy.finetune import FinetuneConfig
    from policy.finetune_bench import BenchConfig, check_seed, plot_week5, run_benchmark

    # (reward weight, distillation weight) of each objective.
    weights = {"combined": (1.0, 1.0), "reward": (1.0, 0.0), "distill": (0.0, 1.0)}
    if objective not in weights:
        raise typer.BadParameter("one of combined, reward, distill", param_hint="--objective")
    if adapter_answers not in ("since_training", "all"):
        raise typer.BadParameter("since_training or all", param_hint="--adapter-answers")
    try:
        check_seed(seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--seed") from None
    try:
        sharpness = tuple(float(x) for x in adapter_sharpness.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(
            "numbers in (0, 1], comma-separated", param_hint="--adapter-sharpness"
        ) from None
    if not all(0.0 < x <= 1.0 for x in sharpness):
        raise typer.BadParameter("numbers in (0, 1], comma-separated", param_hint="--adapter-sharpness")
    torch.set_num_threads(1)
    config = BenchConfig(
        users=users,
        modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
        seed=seed,
        finetune=FinetuneConfig(
            epochs=epochs,
            reward_weight=weights[objective][0] if reward_weight is None else reward_weight,
            distill_weight=weights[objective][1] if distill_weight is None else distill_weight,
            max_seconds=max_train_seconds or math.inf,
        ),
        min_ess=min_ess,
        max_halfwidth=max_halfwidth,
        train_workers=workers,
        adapter_answers=adapter_answers,
        adapter_sharpness=sharpness,
        throughput=throughput,
    )
    err = Console(stderr=True)
    with err.status("starting") as status:
        results = run_benchmark(config, on_stage=lambda text: status.update(text))
    if plot is not None:
        plot_week5(results, plot)
        results["plot"] = str(plot)
    if as_json:
        typer.echo(json.dumps(results))
        return
    typer.echo(f"posterior layer: {results['posterior_layer']}")
    for mode in results["modes"]:
        typer.echo(f"{mode['mode']} ({mode['users']} users), week-5 acceptance (95 % CI over users):")
        for arm, value in mode["week5_acceptance"].items():
            typer.echo(f"  {arm:<27} {value['mean']:.3f} {value['ci95']}")
        for layer, diff in mode["adapter_minus_base30"].items():
            if layer not in mode["target_met"]:
                typer.echo(f"  {layer} - base+30d+answers: {diff['mean']:+.3f} {diff['ci95']}")
                continue
            met = "met" if mode["target_met"][layer] else "NOT met"
            typer.echo(f"  adapter+7d - base+30d ({layer}): {diff['mean']:+.3f} {diff['ci95']}  target {met}")
        typer.echo(f"  gate: {mode['gate']}")
        typer.echo(f"  training seconds per user: {mode['train_seconds_per_user']}")
    if "sweep_users_per_minute" in results:
        typer.echo(f"sweep users/minute: {results['sweep_users_per_minute']}")
    if plot is not None:
        typer.echo(f"plot: {plot}")


def _join_bench_group() -> None:
    try:
        from sim.cli import bench_app
    except ImportError:
        return
    # The simulator cannot import the model, so the layer that composes them registers it (no torch yet).
    from policy.sim_policy import register_model_policies

    register_model_policies()
    bench_app.command("local-model")(bench_local_model)
    bench_app.command("finetune")(bench_finetune)


_join_bench_group()

"""``rhythm bench finetune``: does a weekly per-user adapter with 7 days of history beat the base with 30?

For each profile mode the same simulated users live 5 weeks:

1. weeks 1–4 are logged by the shipped model (its full history, as served without an adapter), sampling from
   its distribution, so every logged action has its propensity;
2. each user's adapter is trained on weeks 1–3 (7-day prompts, distillation to the base with 30 days), and
   the offline gate (SNIPS on week 4, as the job does on its held-out days) decides whether to promote it;
3. week 5 runs three arms — adapter + 7 days, base + 30 days, base + 7 days — each continuing exactly the
   same 4 logged weeks (the logged distributions are replayed with the rollout's seed, so environment and
   sampling draws are common random numbers up to week 5 and after).

Reported per mode: week-5 acceptance per arm with a 95 % interval over users, the paired difference
adapter − base+30d with its interval, the gate's decisions and accuracy (a promoted adapter is "right"
when its user's week-5 acceptance beat base + 30 days), training seconds per user, and the throughput of
the training sweep with 1 and 2 worker processes.
"""

from __future__ import annotations

import math
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from domain import ACTIONS, RESPONSES, SLOTS_PER_DAY, SLOTS_PER_WEEK, Interaction
from policy.finetune import Example, FinetuneConfig, examples_from_trajectory
from policy.prompt import render_prompt
from policy.sim_policy import _state
from sim.env import Observation
from sim.profiles import ProfileBatch, sample_profiles
from sim.response import ACCEPTED
from sim.rollout import Trajectories, rollout

Z95 = 1.959964
LOG_WEEKS = 4


@dataclass(frozen=True)
class BenchConfig:
    users: int = 4
    modes: tuple[str, ...] = ("archetypes", "continuous", "ood")
    seed: int = 0
    short_days: int = 7
    long_days: int = 30
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    margin: float = 0.02
    min_ess: float = 20.0
    throughput: bool = True


class ArmPolicy:
    """Replays the logged distributions for weeks 1–4, then answers with each user's model reading the last
    ``days`` days of their history."""

    def __init__(self, logged: Trajectories, models: list[Any], days: int) -> None:
        self.name = f"arm-{days}d"
        self.logged, self.models, self.days = logged, models, days
        self.histories: list[list[Interaction]] = []

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self.histories = [[] for _ in range(n_users)]

    def probs(self, obs: Observation) -> np.ndarray:
        if obs.t < self.logged.n_steps:
            return np.asarray(self.logged.probs[:, obs.t])
        out = np.empty((len(obs), len(ACTIONS)))
        keep = self.days * SLOTS_PER_DAY
        for user, history in enumerate(self.histories):
            prompt = render_prompt(history[-keep:], _state(obs, user), window_days=self.days)
            out[user] = self.models[user].distribution(prompt)
        return out

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        for user, history in enumerate(self.histories):
            history.append(
                Interaction(_state(obs, user), ACTIONS[int(actions[user])], RESPONSES[int(responses[user])])
            )

    def belief(self) -> np.ndarray | None:
        return None


def _mean_ci(x: np.ndarray) -> dict[str, Any]:
    mean = float(x.mean())
    half = Z95 * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return {"mean": round(mean, 4), "ci95": [round(mean - half, 4), round(mean + half, 4)]}


def _train_one(args: tuple[list[Example], str, FinetuneConfig]) -> dict[str, Any]:
    """One user's fine-tune in a worker process (one torch thread each)."""
    import torch

    from policy.finetune import finetune

    torch.set_num_threads(1)
    examples, out_dir, config = args
    return finetune(examples, Path(out_dir), config).metrics


def _throughput(jobs: list[tuple[list[Example], str, FinetuneConfig]], workers: int) -> float:
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(_train_one, jobs))
    return len(jobs) / (time.perf_counter() - started) * 60.0


def run_mode(
    mode: str, config: BenchConfig, workdir: Path, on_stage: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The whole benchmark for one profile mode (see the module docstring)."""
    from policy.finetune import distributions, load_adapter_model, load_base
    from policy.gate import GateResult, decide, on_policy_stats, snips_stats
    from policy.local import LocalPolicyModel

    stage = on_stage or (lambda _: None)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, len(mode)]))
    profiles: ProfileBatch = sample_profiles(rng, config.users, mode)
    base = LocalPolicyModel.load()
    n, logged_steps = config.users, LOG_WEEKS * SLOTS_PER_WEEK
    seed = config.seed * 1000 + len(mode)

    stage(f"{mode}: logging weeks 1-4 with the shipped model")
    from policy.sim_policy import ModelPolicy

    logged = rollout(ModelPolicy(base), profiles, LOG_WEEKS, seed)

    stage(f"{mode}: training {n} adapters")
    train_steps = range(0, logged_steps - SLOTS_PER_WEEK)
    holdout_steps = range(logged_steps - SLOTS_PER_WEEK, logged_steps)
    jobs = []
    holdouts = []
    for user in range(n):
        train = examples_from_trajectory(
            logged, user, train_steps, short_days=config.short_days, long_days=config.long_days
        )
        holdouts.append(
            examples_from_trajectory(
                logged, user, holdout_steps, short_days=config.short_days, long_days=config.long_days
            )
        )
        jobs.append(
            (train, str(workdir / mode / f"u{user}"), replace(config.finetune, seed=config.seed + user))
        )
    metrics = [_train_one(job) for job in jobs]
    train_seconds = np.array([m["train_seconds"] for m in metrics])

    stage(f"{mode}: offline gate")
    _, tokenizer = load_base()
    adapters: list[LocalPolicyModel] = []
    gates: list[GateResult] = []
    for user in range(n):
        merged = load_adapter_model(Path(jobs[user][1]))
        adapters.append(LocalPolicyModel(merged, base.tokenizer))
        held = holdouts[user]
        probs = distributions(merged, tokenizer, [e.prompt for e in held])
        rewards = [1.0 if e.accepted else 0.0 for e in held]
        gates.append(
            decide(
                snips_stats(probs, [e.action for e in held], [e.propensity for e in held], rewards),
                on_policy_stats(rewards),
                margin=config.margin,
                min_ess=config.min_ess,
                z=1.645,
                pool=[g.stats for g in gates],
            )
        )

    arms = {
        "adapter+7d": ArmPolicy(logged, adapters, config.short_days),
        "base+30d": ArmPolicy(logged, [base] * n, config.long_days),
        "base+7d": ArmPolicy(logged, [base] * n, config.short_days),
    }
    week5: dict[str, np.ndarray] = {}
    for name, policy in arms.items():
        stage(f"{mode}: week 5, {name}")
        traj = rollout(policy, profiles, LOG_WEEKS + 1, seed)
        if not np.array_equal(traj.actions[:, :logged_steps], logged.actions):
            raise AssertionError("the replayed weeks 1-4 differ from the logged ones")
        week5[name] = (traj.responses[:, logged_steps:] == ACCEPTED).mean(axis=1)

    better = week5["adapter+7d"] > week5["base+30d"]
    promoted = np.array([g.promote for g in gates])
    diff = week5["adapter+7d"] - week5["base+30d"]
    return {
        "mode": mode,
        "users": n,
        "week5_acceptance": {name: _mean_ci(values) for name, values in week5.items()},
        "adapter_minus_base30": _mean_ci(diff),
        "target_met": bool(diff.mean() >= 0),
        "gate": {
            "decisions": {
                d: sum(g.decision.value == d for g in gates) for d in {g.decision.value for g in gates}
            },
            "promoted": int(promoted.sum()),
            "promoted_really_better": int((promoted & better).sum()),
            "accuracy_all": round(float((promoted == better).mean()), 4),
            "mean_ess": round(float(np.mean([g.candidate.ess for g in gates])), 2),
        },
        "train_seconds_per_user": {
            "mean": round(float(train_seconds.mean()), 2),
            "max": round(float(train_seconds.max()), 2),
        },
        "_jobs": jobs,
    }


def run_benchmark(config: BenchConfig, on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {"config": {**config.__dict__, "finetune": config.finetune.as_dict()}}
    results["posterior_layer"] = "none: this build has no per-user posterior layer (reported as off)"
    with tempfile.TemporaryDirectory(prefix="rhythm-bench-finetune-") as tmp:
        workdir = Path(tmp)
        modes = [run_mode(mode, config, workdir, on_stage) for mode in config.modes]
        if config.throughput:
            jobs = [job for mode in modes for job in mode["_jobs"]][: max(2, min(4, config.users * 2))]
            jobs = [(examples, out + "-tp", cfg) for examples, out, cfg in jobs]
            if on_stage:
                on_stage(f"sweep throughput over {len(jobs)} users with 1 and 2 workers")
            results["sweep_users_per_minute"] = {
                "1_worker": round(_throughput(jobs, 1), 2),
                "2_workers": round(_throughput(jobs, 2), 2),
            }
    for mode in modes:
        mode.pop("_jobs")
    results["modes"] = modes
    return results

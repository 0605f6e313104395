"""``rhythm bench finetune``: does a weekly per-user adapter with 7 days of history beat the base with 30?

For each profile mode the same simulated users live 5 weeks:

1. weeks 1–4 are logged as the service serves without an adapter: the shipped model reading 30 days,
   combined with the person's answers (:mod:`policy.evidence`, the service's default settings), then the
   service's exploration floor; actions are sampled from that, so every logged action has its propensity;
2. each user's adapter is trained on weeks 1–3 (7-day prompts, distillation to the base with 30 days), and
   the offline gate (SNIPS on week 4, as the job does on its held-out days, with the adapter's distribution
   combined with the answers exactly as each held-out decision was) decides whether to promote it;
3. week 5 runs six arms — adapter + 7 days, base + 30 days, base + 7 days, each with the per-user answers
   layer on (what the service serves) and off (the model alone, floor kept) — each continuing exactly the
   same 4 logged weeks (the logged distributions are replayed with the rollout's seed, so environment and
   sampling draws are common random numbers up to week 5 and after).

Reported per mode: week-5 acceptance per arm with a 95 % interval over users, the paired differences
adapter − base+30d (layer on and off) with their intervals, the gate's decisions and accuracy (a promoted
adapter is "right" when its user's week-5 acceptance with the layer on beat base + 30 days), training seconds
per user, and the throughput of the training sweep with 1 and 2 worker processes.

Seeds: the environment of every mode is ``SeedSequence(seed)`` and the people ``SeedSequence([seed,
crc32(mode)])``; a seed the shipped model was trained on is refused (:mod:`sim.seeds`).
"""

from __future__ import annotations

import math
import multiprocessing
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from domain import ACTIONS, N_ACTIONS, RESPONSES, SLOTS_PER_DAY, SLOTS_PER_WEEK, Interaction
from policy.evidence import EvidenceConfig, combine_batch, day_types, slot_counts
from policy.finetune import Example, FinetuneConfig, examples_from_trajectory
from policy.prompt import render_prompt
from policy.sim_policy import _state, model_training_seeds
from sim.env import Observation
from sim.profiles import ProfileBatch, sample_profiles
from sim.response import ACCEPTED
from sim.rollout import Trajectories, rollout

Z95 = 1.959964
LOG_WEEKS = 4
# The arms of week 5: (name, adapter?, days of history); each runs with the answers layer on and off.
ARMS: tuple[tuple[str, bool, int | None], ...] = (
    ("adapter+7d", True, None),
    ("base+30d", False, 30),
    ("base+7d", False, None),
)


@dataclass(frozen=True)
class BenchConfig:
    users: int = 4
    modes: tuple[str, ...] = ("archetypes", "continuous", "ood", "heldout-sparse", "heldout-rules")
    seed: int = 123
    short_days: int = 7
    long_days: int = 30
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    # The service's defaults: RHYTHM_EVIDENCE_* and RHYTHM_EXPLORATION_FLOOR (the share of uniform mixed in).
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    floor: float = 0.02
    # Which answers the layer combines with an adapter: "all" (as the service does, though the adapter learnt
    # those of its training rows already) or "since_training" (only those after its training rows).
    adapter_answers: str = "all"
    # Extra week-5 arms: the adapter combined with the answers at these sharpness values instead of the
    # service's (an adapter has learnt this person, so softening it to a stranger's prior may waste it).
    adapter_sharpness: tuple[float, ...] = ()
    margin: float = 0.02
    min_ess: float = 20.0
    max_halfwidth: float = 0.1
    train_workers: int = 1
    throughput: bool = True


class ArmPolicy:
    """Each user's model reading the last ``days`` days of their history, combined with their answers when
    ``evidence`` is on, then the exploration floor — or, while ``logged`` has them, the logged distributions
    replayed. It keeps what every decision's combination used (``trace``) so the gate can re-apply it."""

    def __init__(
        self,
        models: list[Any],
        days: int,
        evidence: EvidenceConfig | None,
        floor: float,
        logged: Trajectories | None = None,
        count_from: int = 0,
    ) -> None:
        self.name = f"arm-{days}d"
        self.models, self.days, self.evidence, self.floor, self.logged = models, days, evidence, floor, logged
        # Answers to decisions before this step are not counted (an adapter trained on them already).
        self.count_from = count_from
        self.histories: list[list[Interaction]] = []
        self._accepted = np.zeros((0, 2, SLOTS_PER_DAY, N_ACTIONS))
        self._rejected = np.zeros((0, 2, SLOTS_PER_DAY, N_ACTIONS))
        self.trace: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self.histories = [[] for _ in range(n_users)]
        self._accepted = np.zeros((n_users, 2, SLOTS_PER_DAY, N_ACTIONS))
        self._rejected = np.zeros((n_users, 2, SLOTS_PER_DAY, N_ACTIONS))
        self.trace = []

    def counts(self, obs: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """This slot's (accepted, rejected) counts per action and each user's totals, as the service's
        evidence query would return them before decision ``obs.t``."""
        assert self.evidence is not None
        return (
            slot_counts(self._accepted, obs.day, obs.slot, self.evidence.pool),
            slot_counts(self._rejected, obs.day, obs.slot, self.evidence.pool),
            self._accepted.sum(axis=(1, 2, 3)),
            self._rejected.sum(axis=(1, 2, 3)),
        )

    def probs(self, obs: Observation) -> np.ndarray:
        if self.logged is not None and obs.t < self.logged.n_steps:
            return np.asarray(self.logged.probs[:, obs.t])
        out = np.empty((len(obs), N_ACTIONS))
        keep = self.days * SLOTS_PER_DAY
        for user, history in enumerate(self.histories):
            prompt = render_prompt(history[-keep:], _state(obs, user), window_days=self.days)
            out[user] = self.models[user].distribution(prompt)
        if self.evidence is not None:
            counts = self.counts(obs)
            self.trace.append(counts)
            out = combine_batch(out, *counts, self.evidence)
        return served(out, self.floor)

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        for user, history in enumerate(self.histories):
            history.append(
                Interaction(_state(obs, user), ACTIONS[int(actions[user])], RESPONSES[int(responses[user])])
            )
        if obs.t < self.count_from:
            return
        rows, here, accepted = np.arange(len(obs)), day_types(obs.day), responses == ACCEPTED
        self._accepted[rows, here, obs.slot, actions] += accepted
        self._rejected[rows, here, obs.slot, actions] += ~accepted

    def belief(self) -> np.ndarray | None:
        return None


def answer_counts(
    traj: Trajectories, start: int, evidence: EvidenceConfig
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """For each decision ``t >= start`` of ``traj``: the counts the combination uses (this slot's accepted
    and rejected per action, each user's totals) over the answers to decisions ``start … t - 1``."""
    counter = ArmPolicy([], 0, evidence, 0.0, count_from=start)
    counter.reset(traj.actions.shape[0], np.random.default_rng(0))
    out = []
    for t in range(traj.n_steps):
        obs = Observation(t, traj.day[:, t], traj.slot[:, t], traj.meters[:, t])
        if t >= start:
            out.append(counter.counts(obs))
        counter.update(obs, traj.actions[:, t], traj.responses[:, t])
    return out


def served(probs: np.ndarray, floor: float) -> np.ndarray:
    """The service's exploration floor (``app.recommend.sampling``, no exclusions, temperature 1):
    ``(1 - floor) p + floor / A``."""
    return np.asarray((1.0 - floor) * probs + floor / N_ACTIONS)


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


def _train_all(jobs: list[tuple[list[Example], str, FinetuneConfig]], workers: int) -> list[dict[str, Any]]:
    if workers <= 1:
        return [_train_one(job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_train_one, jobs))


def _throughput(jobs: list[tuple[list[Example], str, FinetuneConfig]], workers: int) -> float:
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(_train_one, jobs))
    return len(jobs) / (time.perf_counter() - started) * 60.0


def arm_name(name: str, answers: bool) -> str:
    return f"{name}+answers" if answers else name


def sharpness_arm(sharpness: float) -> str:
    return f"adapter+7d+answers@{sharpness:g}"


def check_seed(seed: int) -> None:
    """Refuse a seed the shipped model's training rollouts used (it would be scored on seen histories)."""
    if seed in model_training_seeds(None):
        raise ValueError(f"seed {seed} is one the shipped model was trained on; pick one in 100-999")


def run_mode(
    mode: str, config: BenchConfig, workdir: Path, on_stage: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The whole benchmark for one profile mode (see the module docstring)."""
    from policy.finetune import distributions, load_adapter_model, load_base
    from policy.gate import GateResult, decide, on_policy_stats, snips_stats
    from policy.local import LocalPolicyModel

    stage = on_stage or (lambda _: None)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, zlib.crc32(mode.encode())]))
    profiles: ProfileBatch = sample_profiles(rng, config.users, mode)
    base = LocalPolicyModel.load()
    n, logged_steps = config.users, LOG_WEEKS * SLOTS_PER_WEEK

    stage(f"{mode}: logging weeks 1-4 as served (model + answers + floor)")
    logger = ArmPolicy([base] * n, config.long_days, config.evidence, config.floor)
    logged = rollout(logger, profiles, LOG_WEEKS, config.seed)

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
    metrics = _train_all(jobs, config.train_workers)
    train_seconds = np.array([m["train_seconds"] for m in metrics])

    stage(f"{mode}: offline gate")
    # The answers each held-out decision's combination would have counted for the adapter.
    adapter_from = train_steps.stop if config.adapter_answers == "since_training" else 0
    gate_counts = answer_counts(logged, adapter_from, config.evidence)
    t0 = holdout_steps.start - adapter_from
    _, tokenizer = load_base()
    adapters: list[LocalPolicyModel] = []
    gates: list[GateResult] = []
    for user in range(n):
        merged = load_adapter_model(Path(jobs[user][1]))
        adapters.append(LocalPolicyModel(merged, base.tokenizer))
        held = holdouts[user]
        raw = distributions(merged, tokenizer, [e.prompt for e in held])
        # What the adapter would have been served at each held-out decision: its distribution combined
        # with the answers as that decision's combination had them, then the floor (the job's reapply).
        counts = gate_counts[t0 : t0 + len(held)]
        new = np.concatenate(
            [
                combine_batch(
                    np.asarray(raw[i : i + 1]),
                    acc[user : user + 1],
                    rej[user : user + 1],
                    total_acc[user : user + 1],
                    total_rej[user : user + 1],
                    config.evidence,
                )
                for i, (acc, rej, total_acc, total_rej) in enumerate(counts)
            ]
        )
        actions, propensities = [e.action for e in held], [e.propensity for e in held]
        rewards = [1.0 if e.accepted else 0.0 for e in held]
        gates.append(
            decide(
                snips_stats(served(new, config.floor), actions, propensities, rewards),
                on_policy_stats(rewards),
                margin=config.margin,
                min_ess=config.min_ess,
                max_halfwidth=config.max_halfwidth,
                z=1.645,
                pool=[g.stats for g in gates],
            )
        )

    week5: dict[str, np.ndarray] = {}
    for name, with_adapter, days in ARMS:
        for answers in (True, False):
            arm = arm_name(name, answers)
            stage(f"{mode}: week 5, {arm}")
            policy = ArmPolicy(
                adapters if with_adapter else [base] * n,
                days or config.short_days,
                config.evidence if answers else None,
                config.floor,
                logged=logged,
                count_from=adapter_from if with_adapter else 0,
            )
            traj = rollout(policy, profiles, LOG_WEEKS + 1, config.seed)
            if not np.array_equal(traj.actions[:, :logged_steps], logged.actions):
                raise AssertionError("the replayed weeks 1-4 differ from the logged ones")
            week5[arm] = (traj.responses[:, logged_steps:] == ACCEPTED).mean(axis=1)
    for sharpness in config.adapter_sharpness:
        arm = sharpness_arm(sharpness)
        stage(f"{mode}: week 5, {arm}")
        policy = ArmPolicy(
            adapters,
            config.short_days,
            replace(config.evidence, sharpness=sharpness),
            config.floor,
            logged=logged,
            count_from=adapter_from,
        )
        traj = rollout(policy, profiles, LOG_WEEKS + 1, config.seed)
        week5[arm] = (traj.responses[:, logged_steps:] == ACCEPTED).mean(axis=1)

    on, off = week5["adapter+7d+answers"] - week5["base+30d+answers"], week5["adapter+7d"] - week5["base+30d"]
    better = on > 0
    promoted = np.array([g.promote for g in gates])
    decisions = {g.decision.value for g in gates}
    return {
        "mode": mode,
        "users": n,
        "weeks_1_4_acceptance": _mean_ci((logged.responses == ACCEPTED).mean(axis=1)),
        "week5_acceptance": {name: _mean_ci(values) for name, values in week5.items()},
        "adapter_minus_base30": {
            "answers_on": _mean_ci(on),
            "answers_off": _mean_ci(off),
            **{
                sharpness_arm(s): _mean_ci(week5[sharpness_arm(s)] - week5["base+30d+answers"])
                for s in config.adapter_sharpness
            },
        },
        "target_met": {"answers_on": bool(on.mean() >= 0), "answers_off": bool(off.mean() >= 0)},
        "gate": {
            "decisions": {d: sum(g.decision.value == d for g in gates) for d in sorted(decisions)},
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
    check_seed(config.seed)
    results: dict[str, Any] = {
        "config": {
            **config.__dict__,
            "finetune": config.finetune.as_dict(),
            "evidence": config.evidence.as_dict(),
        },
        "posterior_layer": (
            "policy.evidence with the service's settings: arms named '+answers' have it on (what the service "
            "serves), the others off; weeks 1-4 were logged with it on; with an adapter it counts "
            + (
                "only the answers after the adapter's training rows"
                if config.adapter_answers == "since_training"
                else "all the answers"
            )
        ),
    }
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


def plot_week5(results: dict[str, Any], path: Path) -> None:
    """Grouped bars: week-5 acceptance of each arm per profile mode, with the 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = results["modes"]
    arms = [arm_name(name, answers) for answers in (True, False) for name, _, _ in ARMS]
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(max(7.0, 2.2 * len(modes)), 4.2))
    for i, arm in enumerate(arms):
        means = np.array([m["week5_acceptance"][arm]["mean"] for m in modes])
        lows = np.array([m["week5_acceptance"][arm]["ci95"][0] for m in modes])
        highs = np.array([m["week5_acceptance"][arm]["ci95"][1] for m in modes])
        x = np.arange(len(modes)) + (i - (len(arms) - 1) / 2) * width
        ax.bar(x, means, width, label=arm, hatch="" if arm.endswith("+answers") else "//", alpha=0.85)
        ax.errorbar(x, means, yerr=[means - lows, highs - means], fmt="none", ecolor="k", capsize=2, lw=0.8)
    ax.set_xticks(np.arange(len(modes)), [f"{m['mode']}\n({m['users']} users)" for m in modes])
    ax.set_ylabel("week-5 acceptance (95 % CI over users)")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(f"rhythm bench finetune, seed {results['config']['seed']}")
    ax.legend(ncol=2, fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)

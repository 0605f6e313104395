"""The exploration trade-off: how much acceptance does a served distribution give up to make its logs usable?

For each point of a grid of serving ``sharpness`` (the base policy's log-probabilities times ``s``: ``s < 1``
softens, like a temperature ``1/s``) and exploration ``floor`` (every action keeps at least ``floor``,
:func:`sim.policies.base.floor_distribution`), the base policy is served to the users for ``weeks`` and the
decisions are logged with their propensities. Two target policies are then estimated from those logs with the
pooled self-normalised inverse-propensity estimator ``sum w r / sum w`` over all users and decisions
(``w = pi_target(a | x) / pi_logged(a | x)``, ``r`` = accepted), and run for real on the same users and
environment seed to get their true acceptance:

* ``sharpness``: the base policy at ``target_sharpness``;
* ``posterior``: a product of experts of the base policy (as served at sharpness 1) and a per-user Beta(1, 1)
  posterior on acceptance per (slot, action), ``pi ∝ p_base · exp(poe_weight · logit(posterior mean))`` (the
  posterior is rebuilt from each user's logged history, exactly what the target would have known).

The estimator treats every decision as a contextual bandit round (the target's effect on later histories is
ignored), which is what an off-policy gate on production logs can do. Per grid point the report has the
logging policy's acceptance, each target's estimate, error (estimate - truth) and effective sample size
``(sum w)^2 / sum w^2`` (absolute and as a share of the logged decisions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from domain import N_ACTIONS, SLOTS_PER_DAY
from sim.env import Observation
from sim.policies.base import Policy, floor_distribution
from sim.profiles import ProfileBatch
from sim.response import ACCEPTED
from sim.rollout import Trajectories, rollout

LOG_FLOOR = 1e-300


def sharpen(p: np.ndarray, sharpness: float) -> np.ndarray:
    """``softmax(sharpness * log p)`` over the last axis."""
    z = sharpness * np.log(np.maximum(p, LOG_FLOOR))
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.asarray(np.log(p) - np.log1p(-p))


def product_of_experts(raw: np.ndarray, alpha: np.ndarray, beta: np.ndarray, weight: float) -> np.ndarray:
    """``pi ∝ raw · exp(weight · logit(alpha / (alpha + beta)))`` per row."""
    z = np.log(np.maximum(raw, LOG_FLOOR)) + weight * _logit(alpha / (alpha + beta))
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


class ServedPolicy:
    """The base policy served at ``sharpness`` with an exploration ``floor``; keeps the raw distributions."""

    def __init__(self, base: Policy, sharpness: float, floor: float) -> None:
        self.base, self.sharpness, self.floor = base, sharpness, floor
        self.name = f"{base.name}@s{sharpness:g},f{floor:g}"
        self.raw: list[np.ndarray] = []

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self.raw = []
        self.base.reset(n_users, rng)

    def probs(self, obs: Observation) -> np.ndarray:
        raw = self.base.probs(obs)
        self.raw.append(raw)
        return floor_distribution(sharpen(raw, self.sharpness), self.floor)

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        self.base.update(obs, actions, responses)

    def belief(self) -> np.ndarray | None:
        return None


class PosteriorProductPolicy:
    """The base policy times a per-user Beta posterior per (slot, action) (:func:`product_of_experts`)."""

    def __init__(self, base: Policy, weight: float) -> None:
        self.base, self.weight = base, weight
        self.name = f"{base.name}+posterior"

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self.base.reset(n_users, rng)
        self._alpha = np.ones((n_users, SLOTS_PER_DAY, N_ACTIONS))
        self._beta = np.ones((n_users, SLOTS_PER_DAY, N_ACTIONS))

    def probs(self, obs: Observation) -> np.ndarray:
        rows = np.arange(len(obs))
        raw = self.base.probs(obs)
        return product_of_experts(raw, self._alpha[rows, obs.slot], self._beta[rows, obs.slot], self.weight)

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        self.base.update(obs, actions, responses)
        rows = np.arange(len(obs))
        accepted = responses == ACCEPTED
        self._alpha[rows, obs.slot, actions] += accepted
        self._beta[rows, obs.slot, actions] += ~accepted

    def belief(self) -> np.ndarray | None:
        return None


def _posterior_before(traj: Trajectories) -> tuple[np.ndarray, np.ndarray]:
    """``(N, T, 10)`` Beta parameters of each step's slot, from the user's logged history before the step."""
    n, steps = traj.n_users, traj.n_steps
    alpha = np.ones((n, SLOTS_PER_DAY, N_ACTIONS))
    beta = np.ones((n, SLOTS_PER_DAY, N_ACTIONS))
    out_a, out_b = np.empty((n, steps, N_ACTIONS)), np.empty((n, steps, N_ACTIONS))
    rows = np.arange(n)
    accepted = traj.accepted
    for t in range(steps):
        slot, act = traj.slot[:, t], traj.actions[:, t]
        out_a[:, t], out_b[:, t] = alpha[rows, slot], beta[rows, slot]
        alpha[rows, slot, act] += accepted[:, t]
        beta[rows, slot, act] += ~accepted[:, t]
    return out_a, out_b


def snips(target: np.ndarray, logged: np.ndarray, reward: np.ndarray) -> tuple[float, float]:
    """Pooled self-normalised IPS estimate and effective sample size of propensities ``target``/``logged``
    of the logged actions (any shape, pooled)."""
    w = (target / logged).reshape(-1)
    r = reward.reshape(-1).astype(np.float64)
    return float((w * r).sum() / w.sum()), float(w.sum() ** 2 / (w**2).sum())


def run_exploration(
    make_base: Callable[[], Policy],
    profiles: ProfileBatch,
    weeks: int,
    seed: int,
    sharpness_grid: Sequence[float],
    floor_grid: Sequence[float],
    target_sharpness: float,
    poe_weight: float,
    on_run: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The trade-off curve (see module docstring); every rollout uses the same users and ``seed``."""

    def done(label: str) -> None:
        if on_run is not None:
            on_run(label)

    truth_sharp = rollout(ServedPolicy(make_base(), target_sharpness, 0.0), profiles, weeks, seed)
    done("target: sharpness")
    truth_poe = rollout(PosteriorProductPolicy(make_base(), poe_weight), profiles, weeks, seed)
    done("target: posterior")
    targets = {
        "sharpness": float(truth_sharp.accepted.mean()),
        "posterior": float(truth_poe.accepted.mean()),
    }
    points = []
    for s in sharpness_grid:
        for f in floor_grid:
            served = ServedPolicy(make_base(), s, f)
            traj = rollout(served, profiles, weeks, seed)
            raw = np.stack(served.raw, axis=1)  # (N, T, 10)
            act = traj.actions[:, :, None]
            logged = np.take_along_axis(traj.probs, act, axis=2)[:, :, 0]
            alpha, beta = _posterior_before(traj)
            pi = {
                "sharpness": np.take_along_axis(sharpen(raw, target_sharpness), act, axis=2)[:, :, 0],
                "posterior": np.take_along_axis(
                    product_of_experts(raw, alpha, beta, poe_weight), act, axis=2
                )[:, :, 0],
            }
            point: dict[str, Any] = {
                "sharpness": s,
                "floor": f,
                "logging_acceptance": float(traj.accepted.mean()),
                "median_propensity": float(np.median(logged)),
            }
            point["targets"] = {}
            for name, target in pi.items():
                estimate, ess = snips(target, logged, traj.accepted)
                point["targets"][name] = {
                    "estimate": estimate,
                    "true": targets[name],
                    "error": estimate - targets[name],
                    "ess": ess,
                    "ess_share": ess / logged.size,
                }
            points.append(point)
            done(f"logging s={s:g} f={f:g}")
    return {
        "users": len(profiles),
        "weeks": weeks,
        "seed": seed,
        "target_sharpness": target_sharpness,
        "poe_weight": poe_weight,
        "targets_true_acceptance": targets,
        "points": points,
    }


def write_exploration_plot(path: Any, report: dict[str, Any]) -> None:
    """Logging acceptance against |estimator error| per grid point, one marker per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, marker in (("sharpness", "o"), ("posterior", "s")):
        xs = [p["logging_acceptance"] for p in report["points"]]
        ys = [abs(p["targets"][name]["error"]) for p in report["points"]]
        ax.scatter(xs, ys, marker=marker, label=f"target: {name}")
        for p, x, y in zip(report["points"], xs, ys, strict=True):
            ax.annotate(f"s{p['sharpness']:g} f{p['floor']:g}", (x, y), fontsize=7)
    ax.axhline(0.03, color="0.6", linewidth=0.8, linestyle="--")
    ax.set_xlabel("acceptance of the logging policy")
    ax.set_ylabel("|pooled SNIPS estimate - true acceptance|")
    ax.set_title(
        f"exploration trade-off · {report['users']} users · {report['weeks']} weeks · seed {report['seed']}"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

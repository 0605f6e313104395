"""The personalization benchmark: run policies on simulated users and measure how fast they personalize.

Metrics per policy (computed by :func:`evaluate` from a :class:`sim.rollout.Trajectories`):

* ``acceptance_by_week`` / ``acceptance_ci_by_week``: realized acceptance rate per week, mean over users
  with a 95 % normal confidence interval over users (``mean +- 1.96 sd / sqrt(N)``); ``acceptance`` over the
  whole run.
* ``regret``: expected cumulative regret against the oracle, ``sum_t max_a p(a) - p(a_t)`` in the states the
  policy visited (``p`` = true P(accept)), mean over users, with ``regret_ci``.
* ``identify_median`` / ``identify_p90``: interactions to identification by behaviour: the first ``s`` such
  that for every later window of ``WINDOW`` = 8 interactions starting at ``s' >= s`` the policy's expected
  acceptance is at least ``(1 - TOLERANCE)`` = 90 % of the oracle's expected acceptance in the same states.
  Users that never get there count as infinite (``identify_never`` is their share; a median/p90 that is
  infinite is ``None`` in JSON). Expected (not realized) acceptance keeps the criterion free of coin-flip
  noise.
* for policies with a belief on archetype profiles: ``belief_identify_median`` / ``belief_identify_p90`` = the
  first number of interactions after which the posterior on the true archetype is >= 0.9, and
  ``misidentification_rate`` = share of users whose belief first crossed 0.9 on a wrong archetype.
* ``action_coverage``: mean number of distinct actions recommended per user, divided by 10.
* ``acceptance_curve`` / ``acceptance_curve_ci``: acceptance at each interaction (for the plot).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from domain import N_ACTIONS, SLOTS_PER_WEEK
from sim.policies import make_policy
from sim.profiles import sample_profiles
from sim.rollout import Trajectories, rollout

WINDOW = 8
TOLERANCE = 0.10
BELIEF_THRESHOLD = 0.9
Z95 = 1.96


def _mean_ci(x: np.ndarray) -> tuple[float, list[float]]:
    """Mean over axis 0 (users) and its 95 % normal interval."""
    mean = float(x.mean())
    half = Z95 * float(x.std(ddof=1)) / math.sqrt(x.shape[0]) if x.shape[0] > 1 else 0.0
    return mean, [mean - half, mean + half]


def _quantile(x: np.ndarray, q: float) -> float | None:
    value = float(np.quantile(x, q, method="lower"))
    return None if math.isinf(value) else value


def identification_by_behaviour(
    traj: Trajectories, window: int = WINDOW, tolerance: float = TOLERANCE
) -> np.ndarray:
    """``(N,)`` interactions before the policy's rolling expected acceptance stays within ``tolerance`` of the
    oracle's; ``inf`` when it never does within the run."""
    n, steps = traj.n_users, traj.n_steps
    if steps < window:
        raise ValueError(f"need at least {window} steps to identify, got {steps}")
    chosen = np.take_along_axis(traj.p_accept, traj.actions[:, :, None], axis=2)[:, :, 0]
    best = traj.p_accept.max(axis=2)
    kernel = np.ones(window) / window
    roll_chosen = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, chosen)
    roll_best = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, best)
    ok = roll_chosen >= (1.0 - tolerance) * roll_best  # (N, steps - window + 1)
    # Position after the last failing window; if the last window fails the user never identified.
    last_bad = np.where(~ok, np.arange(ok.shape[1])[None, :], -1).max(axis=1)
    result = (last_bad + 1).astype(np.float64)
    result[last_bad == ok.shape[1] - 1] = np.inf
    assert result.shape == (n,)
    return np.asarray(result)


def identification_by_belief(
    traj: Trajectories, threshold: float = BELIEF_THRESHOLD
) -> tuple[np.ndarray, float]:
    """Interactions until the posterior on the true archetype first reaches ``threshold`` (``inf`` if never),
    and the share of users whose posterior first reached it on a wrong archetype."""
    if traj.belief is None or traj.final_belief is None:
        raise ValueError("policy has no belief")
    true = traj.profiles.archetype
    if (true < 0).any():
        raise ValueError("belief identification needs archetype profiles")
    beliefs = np.concatenate([traj.belief, traj.final_belief[:, None, :]], axis=1)  # after t interactions
    rows = np.arange(traj.n_users)
    on_true = beliefs[rows, :, true] >= threshold
    first_true = np.where(on_true.any(axis=1), on_true.argmax(axis=1), np.inf).astype(np.float64)
    confident = beliefs.max(axis=2) >= threshold
    stopped = confident.any(axis=1)
    stop_at = confident.argmax(axis=1)
    wrong = beliefs[rows, stop_at].argmax(axis=1) != true
    misid = float(wrong[stopped].mean()) if stopped.any() else 0.0
    return first_true, misid


def evaluate(traj: Trajectories) -> dict[str, Any]:
    """All benchmark metrics for one policy's trajectories (see module docstring)."""
    n, steps = traj.n_users, traj.n_steps
    weeks = steps // SLOTS_PER_WEEK
    accepted = traj.accepted.astype(np.float64)
    by_week = accepted[:, : weeks * SLOTS_PER_WEEK].reshape(n, weeks, SLOTS_PER_WEEK).mean(axis=2)
    week_stats = [_mean_ci(by_week[:, w]) for w in range(weeks)]
    acceptance, acceptance_ci = _mean_ci(accepted.mean(axis=1))

    chosen = np.take_along_axis(traj.p_accept, traj.actions[:, :, None], axis=2)[:, :, 0]
    regret, regret_ci = _mean_ci((traj.p_accept.max(axis=2) - chosen).sum(axis=1))

    ident = identification_by_behaviour(traj)
    curve_mean = accepted.mean(axis=0)
    curve_half = Z95 * accepted.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(steps)

    coverage = np.array([np.unique(row).size for row in traj.actions]) / N_ACTIONS
    report: dict[str, Any] = {
        "acceptance_by_week": [m for m, _ in week_stats],
        "acceptance_ci_by_week": [ci for _, ci in week_stats],
        "acceptance": acceptance,
        "acceptance_ci": acceptance_ci,
        "regret": regret,
        "regret_ci": regret_ci,
        "identify_median": _quantile(ident, 0.5),
        "identify_p90": _quantile(ident, 0.9),
        "identify_never": float(np.isinf(ident).mean()),
        "identify_window": WINDOW,
        "action_coverage": float(coverage.mean()),
        "acceptance_curve": curve_mean.tolist(),
        "acceptance_curve_ci": [
            [float(m - h), float(m + h)] for m, h in zip(curve_mean, curve_half, strict=True)
        ],
    }
    if traj.belief is not None and (traj.profiles.archetype >= 0).all():
        first, misid = identification_by_belief(traj)
        report["belief_identify_median"] = _quantile(first, 0.5)
        report["belief_identify_p90"] = _quantile(first, 0.9)
        report["belief_identify_never"] = float(np.isinf(first).mean())
        report["misidentification_rate"] = misid
    return report


def run_benchmark(
    policies: list[str],
    mode: str,
    users: int,
    weeks: int,
    seed: int,
    on_step: Callable[[str, int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every policy on the same ``users`` profiles (sampled from ``mode`` with ``seed``) and the same
    environment seed, and return ``{policy spec: metrics}`` (metrics also hold ``seconds``, the wall time)."""
    if users < 2:
        raise ValueError("users must be >= 2 (confidence intervals need two users)")
    profiles = sample_profiles(np.random.default_rng([seed, 0x5EED]), users, mode)
    results: dict[str, dict[str, Any]] = {}
    for spec in policies:
        policy = make_policy(spec, profiles)
        started = time.perf_counter()
        step_cb = None if on_step is None else (lambda t, spec=spec: on_step(spec, t))
        traj = rollout(policy, profiles, weeks, seed, on_step=step_cb)
        seconds = time.perf_counter() - started
        report = evaluate(traj)
        report["seconds"] = seconds
        results[spec] = report
    return results

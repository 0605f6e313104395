"""The offline gate: may a new adapter replace the current policy? Self-normalised IPS on held-out days.

For the user's held-out most recent decisions (action ``a_i`` logged with propensity ``p_i``, reward
``r_i`` = 1 if accepted), the new policy's acceptance is estimated by SNIPS,
``V = sum(w r) / sum(w)`` with ``w_i = pi_new(a_i | x_i) / p_i``, next to the current policy's (the policy
that logged them: on-policy, ``w = 1``). The effective sample size ``(sum w)^2 / sum w^2`` says how much
evidence the weights leave; the standard error is the delta-method one of SNIPS.

Today's served distributions are near-deterministic (median propensity ~0.98): an adapter that changes the
argmax gets tiny weights wherever it disagrees and the ESS collapses. Then one user's log is "not enough
evidence"; the gate pools the sufficient statistics of every job of the same ISO week that already reached
its gate (a larger sample of the same estimator across users) and decides on the pooled difference, or
holds the adapter back when even the pool is too small. Which of these happened is stored on the job.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


class GateDecision(enum.StrEnum):
    PROMOTED = "promoted"  # enough evidence in the user's own log, not worse by more than the margin
    PROMOTED_POOLED = "promoted_pooled"  # too little for one user; the week's pool is enough and not worse
    HELD_BACK = "held_back"  # estimated worse by more than the margin
    NOT_ENOUGH_EVIDENCE = "not_enough_evidence"  # neither the user's log nor the pool is enough: held back


@dataclass(frozen=True)
class Stats:
    """Sufficient statistics of the SNIPS estimate of one policy (sums over decisions); they add up."""

    n: int
    sum_w: float
    sum_wr: float
    sum_w2: float
    sum_w2r: float
    sum_w2r2: float

    @classmethod
    def of(cls, weights: np.ndarray, rewards: np.ndarray) -> Stats:
        w, r = np.asarray(weights, dtype=np.float64), np.asarray(rewards, dtype=np.float64)
        return cls(
            len(w),
            float(w.sum()),
            float((w * r).sum()),
            float((w * w).sum()),
            float((w * w * r).sum()),
            float((w * w * r * r).sum()),
        )

    def __add__(self, other: Stats) -> Stats:
        a, b = astuple(self), astuple(other)
        return Stats(int(a[0] + b[0]), *(x + y for x, y in zip(a[1:], b[1:], strict=True)))

    @property
    def value(self) -> float:
        return self.sum_wr / self.sum_w if self.sum_w > 0 else 0.0

    @property
    def ess(self) -> float:
        return self.sum_w**2 / self.sum_w2 if self.sum_w2 > 0 else 0.0

    @property
    def stderr(self) -> float:
        if self.sum_w <= 0:
            return math.inf
        v = self.value
        # sum w^2 (r - V)^2, expanded so that it can be computed from pooled sums.
        spread = self.sum_w2r2 - 2 * v * self.sum_w2r + v * v * self.sum_w2
        return math.sqrt(max(spread, 0.0)) / self.sum_w


def astuple(stats: Stats) -> tuple[float, ...]:
    return (stats.n, stats.sum_w, stats.sum_wr, stats.sum_w2, stats.sum_w2r, stats.sum_w2r2)


@dataclass(frozen=True)
class Estimate:
    value: float
    stderr: float
    lower: float
    upper: float
    ess: float
    n: int

    @classmethod
    def of(cls, stats: Stats, z: float) -> Estimate:
        value, se = stats.value, stats.stderr
        return cls(value, se, value - z * se, value + z * se, stats.ess, stats.n)


def snips_stats(
    new_probs: npt.ArrayLike, actions: npt.ArrayLike, propensities: npt.ArrayLike, rewards: npt.ArrayLike
) -> Stats:
    """SNIPS statistics of the policy whose distributions ``new_probs`` ``(N, 10)`` are given."""
    index = np.asarray(actions, dtype=np.int64)
    p = np.asarray(propensities, dtype=np.float64)
    if np.any(p <= 0):
        raise ValueError("logged propensities must be positive for off-policy evaluation")
    weights = np.asarray(new_probs, dtype=np.float64)[np.arange(len(index)), index] / p
    return Stats.of(weights, np.asarray(rewards, dtype=np.float64))


def on_policy_stats(rewards: npt.ArrayLike) -> Stats:
    r = np.asarray(rewards, dtype=np.float64)
    return Stats.of(np.ones_like(r), r)


@dataclass(frozen=True)
class GateResult:
    decision: GateDecision
    candidate: Estimate
    current: Estimate
    difference: float
    difference_lower: float
    pooled: dict[str, Any] | None
    stats: dict[str, Any]  # this user's sums, for the week's later jobs to pool

    @property
    def promote(self) -> bool:
        return self.decision in (GateDecision.PROMOTED, GateDecision.PROMOTED_POOLED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "candidate": asdict(self.candidate),
            "current": asdict(self.current),
            "difference": self.difference,
            "difference_lower": self.difference_lower,
            "pooled": self.pooled,
            "stats": self.stats,
        }


def _difference(new: Stats, cur: Stats, z: float) -> tuple[float, float]:
    diff = new.value - cur.value
    return diff, diff - z * math.hypot(new.stderr, cur.stderr)


def decide(
    candidate: Stats,
    current: Stats,
    *,
    margin: float,
    min_ess: float,
    z: float,
    pool: Iterable[dict[str, Any]] = (),
    max_halfwidth: float = math.inf,
) -> GateResult:
    """Promote only if the lower bound of (candidate - current) is above ``-margin``, on enough evidence: at
    least ``min_ess`` effective samples and an interval of half-width at most ``max_halfwidth``. One user's
    few held-out decisions rarely bound the difference that tightly (28 decisions: a standard error near
    0.13); then the decision is taken on the pool of the week's earlier gates, or "not enough evidence"."""
    diff, lower = _difference(candidate, current, z)
    stats = {"candidate": list(astuple(candidate)), "current": list(astuple(current))}
    pooled_info: dict[str, Any] | None = None
    if candidate.ess >= min_ess and diff - lower <= max_halfwidth:
        decision = GateDecision.PROMOTED if lower >= -margin else GateDecision.HELD_BACK
    else:
        pooled_new, pooled_cur, users = candidate, current, 1
        for other in pool:
            pooled_new = pooled_new + Stats(*other["candidate"])
            pooled_cur = pooled_cur + Stats(*other["current"])
            users += 1
        p_diff, p_lower = _difference(pooled_new, pooled_cur, z)
        pooled_info = {
            "users": users,
            "ess": pooled_new.ess,
            "candidate": pooled_new.value,
            "current": pooled_cur.value,
            "difference": p_diff,
            "difference_lower": p_lower,
        }
        pooled_info["difference_halfwidth"] = p_diff - p_lower
        if pooled_new.ess < min_ess or p_diff - p_lower > max_halfwidth:
            decision = GateDecision.NOT_ENOUGH_EVIDENCE
        elif p_lower >= -margin:
            decision = GateDecision.PROMOTED_POOLED
        else:
            decision = GateDecision.HELD_BACK
    return GateResult(
        decision, Estimate.of(candidate, z), Estimate.of(current, z), diff, lower, pooled_info, stats
    )

"""From a policy's distribution to the one that is sampled: exclusions, temperature, then a floor.

Sampling from the distribution is the exploration; the probability of the sampled action under *this*
distribution is its propensity, which off-policy evaluation divides by later. A confident model puts ~0.97 on
one action, so without a floor some actions get propensities near 0 and an IPS / doubly-robust estimate of any
new model that prefers them explodes (or, where the logged propensity is 0, is undefined). Mixing ``floor`` of
uniform mass over the allowed actions bounds every allowed propensity below by ``floor / len(allowed)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from app.recommend.backends.base import Distribution
from domain import Action


def sampling_distribution(
    probs: Distribution, exclude: Iterable[Action], temperature: float, floor: float = 0.0
) -> Distribution:
    """``probs ** (1 / temperature)`` with excluded actions at exactly 0, renormalised, then mixed with
    ``floor`` of the uniform distribution over the allowed actions.

    If every allowed action has (numerically) zero probability — a very peaked model at low temperature — the
    allowed actions are made equally likely rather than dividing by zero.
    """
    if temperature <= 0.0:
        raise ValueError("temperature must be > 0")
    if not 0.0 <= floor < 1.0:
        raise ValueError("floor must be in [0, 1)")
    allowed = np.ones(len(probs), dtype=bool)
    for action in exclude:
        allowed[action.index] = False
    if not allowed.any():
        raise ValueError("every action is excluded")
    with np.errstate(divide="ignore"):
        logits = np.log(np.asarray(probs, dtype=np.float64)) / temperature
    logits[~allowed] = -np.inf
    top = logits.max()
    if not np.isfinite(top):
        return np.asarray(allowed / allowed.sum(), dtype=np.float64)
    weights = np.exp(logits - top)
    sharpened = weights / weights.sum()
    return np.asarray((1.0 - floor) * sharpened + floor * allowed / allowed.sum(), dtype=np.float64)


def sample(probs: Distribution, rng: np.random.Generator) -> int:
    """Index of an action drawn from ``probs``.

    What ``rng.choice(len(probs), p=probs)`` does for one draw (normalised CDF, one uniform, right-side
    search), so the same generator state gives the same action, without its per-call argument checks: a
    third of its cost on every recommendation, for a distribution :func:`sampling_distribution` has already
    made valid.
    """
    cdf = np.cumsum(probs, dtype=np.float64)
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))

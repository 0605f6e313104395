"""From a policy's distribution to the one that is sampled: exclusions, then temperature.

Sampling from the distribution is the exploration; the probability of the sampled action under *this*
distribution is its propensity, which off-policy evaluation divides by later.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from app.recommend.backends.base import Distribution
from sim.domain import Action


def sampling_distribution(probs: Distribution, exclude: Iterable[Action], temperature: float) -> Distribution:
    """``probs ** (1 / temperature)`` with excluded actions at exactly 0, renormalised.

    If every allowed action has (numerically) zero probability — a very peaked model at low temperature — the
    allowed actions are made equally likely rather than dividing by zero.
    """
    if temperature <= 0.0:
        raise ValueError("temperature must be > 0")
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
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def sample(probs: Distribution, rng: np.random.Generator) -> int:
    """Index of an action drawn from ``probs``."""
    return int(rng.choice(len(probs), p=probs))

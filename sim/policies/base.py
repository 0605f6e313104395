"""The one policy interface of the simulator, vectorised over users.

A policy is an object with

* ``name: str``;
* ``reset(n_users, rng)``: forget everything, prepare for ``n_users`` new users; ``rng`` is the policy's own
  ``numpy.random.Generator`` (for internal sampling, e.g. Thompson draws or particles);
* ``probs(obs) -> (N, 10)``: the distribution over ``ACTIONS`` it recommends from in this state (rows sum to
  1); the caller samples the action from it, so the distribution is the policy (and the propensity to log);
* ``update(obs, actions, responses)``: learn from the responses (codes 0/1/2 = accepted/ignored/rescheduled)
  to the actions taken in ``obs``;
* ``belief() -> (N, 3) | None``: the current posterior over ``ARCHETYPE_NAMES`` (``None`` when it has none).

Histories are implicit: a policy sees every ``(obs, actions, responses)`` of its users in order.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from domain import N_ACTIONS
from sim.env import Observation


@runtime_checkable
class Policy(Protocol):
    name: str

    def reset(self, n_users: int, rng: np.random.Generator) -> None: ...

    def probs(self, obs: Observation) -> np.ndarray: ...

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None: ...

    def belief(self) -> np.ndarray | None: ...


def one_hot(index: np.ndarray, width: int = N_ACTIONS) -> np.ndarray:
    out = np.zeros((index.shape[0], width))
    out[np.arange(index.shape[0]), index] = 1.0
    return out


def weighted_one_hot(best: np.ndarray, weights: np.ndarray, width: int = N_ACTIONS) -> np.ndarray:
    """``sum_k weights[n, k] * onehot(best[n, k])`` for ``best, weights (N, K)``: posterior-sampling
    distribution."""
    out = np.zeros((best.shape[0], width))
    rows = np.repeat(np.arange(best.shape[0]), best.shape[1])
    np.add.at(out, (rows, best.reshape(-1)), weights.reshape(-1))
    return out


def floor_distribution(p: np.ndarray, floor: float) -> np.ndarray:
    """Mix with uniform so every action keeps probability >= ``floor`` (for logging propensities)."""
    width = p.shape[-1]
    return np.asarray((1.0 - floor * width) * p + floor)

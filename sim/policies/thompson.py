"""Per-user Thompson-sampling bandit with no prior: Beta(1, 1) on P(accept) per (slot, action).

It knows nothing about profiles or meters; its recommendation distribution is the probability that each action
has the highest Beta draw, estimated with ``n_draws`` Monte Carlo draws per user and step.
"""

from __future__ import annotations

import numpy as np

from domain import N_ACTIONS, SLOTS_PER_DAY
from sim.env import Observation
from sim.response import ACCEPTED


class ThompsonPolicy:
    name = "thompson"

    def __init__(self, n_draws: int = 64) -> None:
        self.n_draws = n_draws
        self._rng = np.random.default_rng(0)
        self._alpha = np.ones((0, SLOTS_PER_DAY, N_ACTIONS))
        self._beta = np.ones((0, SLOTS_PER_DAY, N_ACTIONS))

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self._rng = rng
        self._alpha = np.ones((n_users, SLOTS_PER_DAY, N_ACTIONS))
        self._beta = np.ones((n_users, SLOTS_PER_DAY, N_ACTIONS))

    def probs(self, obs: Observation) -> np.ndarray:
        rows = np.arange(len(obs))
        a = self._alpha[rows, obs.slot]
        b = self._beta[rows, obs.slot]
        draws = self._rng.beta(a, b, size=(self.n_draws, *a.shape))
        best = draws.argmax(axis=2)  # (draws, N)
        counts = np.zeros((len(obs), N_ACTIONS))
        np.add.at(counts, (np.tile(rows, self.n_draws), best.reshape(-1)), 1.0)
        return counts / self.n_draws

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        rows = np.arange(len(obs))
        accepted = responses == ACCEPTED
        self._alpha[rows, obs.slot, actions] += accepted
        self._beta[rows, obs.slot, actions] += ~accepted

    def belief(self) -> np.ndarray | None:
        return None

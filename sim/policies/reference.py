"""Reference learners for the held-out families: posterior sampling with the family's own generator as prior.

A held-out family (:mod:`sim.heldout`) is out of a learner's reach or not; the model's score alone cannot say
which. This learner knows the generator: for every user and action it keeps ``n_particles`` draws of that
action's parameters from the family's prior (the marginal of one action's column, the same for every action
because the generators treat actions alike), weights each draw by the likelihood of every observed response to
that action (accepted / ignored / rescheduled, through the same :func:`sim.response.responses_from_like` as
the environment, so the rescheduled answers' hint about other slots is used), and acts by posterior sampling:
``n_draws`` joint draws of one particle per action, the argmax of their P(accept) in the current state.

Per-action factorisation ignores what the generator couples across actions (a person's shared base rate and
drift, "one liked action per slot"), and importance weights without rejuvenation can settle on the best of
the prior draws; it is a strong learner that knows the family, not the exact Bayes-optimal one. Names:
``ref-sparse`` / ``ref-rules`` (``:M`` sets the particle count).
"""

from __future__ import annotations

import numpy as np

from domain import N_ACTIONS, SLOTS_PER_WEEK
from sim.env import Observation
from sim.heldout import FAMILIES
from sim.response import responses_from_like

LIKELIHOOD_FLOOR = 1e-6


class FamilyReferencePolicy:
    def __init__(self, family: str, n_particles: int = 512, n_draws: int = 32) -> None:
        self.family = FAMILIES[family]
        self.name = f"ref-{family.removeprefix('heldout-')}"
        self.n_particles = n_particles
        self.n_draws = n_draws
        self._rng = np.random.default_rng(0)

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self._rng = rng
        m = self.n_particles
        # n * M prior people; person (u, j)'s column a is user u's j-th particle for action a.
        drawn = self.family.sample(rng, n_users * m).reshape(n_users, m, N_ACTIONS, self.family.n_params)
        self._particles = np.ascontiguousarray(drawn.transpose(0, 2, 1, 3))  # (N, 10, M, P)
        self._logw = np.zeros((n_users, N_ACTIONS, m))

    def _like(self, params: np.ndarray, obs: Observation) -> np.ndarray:
        """``(N, K, 4)`` like of ``params (N, K, P)`` (K particles per user) in each user's state."""
        n, k, p = params.shape
        like = self.family.like(
            params.reshape(n * k, p),
            np.repeat(obs.meters, k, axis=0),
            np.repeat(obs.day, k),
            np.full(n * k, obs.t // SLOTS_PER_WEEK),
        )
        return np.asarray(like.reshape(n, k, -1))

    def probs(self, obs: Observation) -> np.ndarray:
        n, m = self._logw.shape[0], self.n_particles
        rows = np.arange(n)
        here = self._like(self._particles.reshape(n, N_ACTIONS * m, -1), obs)[rows, :, obs.slot]
        here = here.reshape(n, N_ACTIONS, m)
        w = np.exp(self._logw - self._logw.max(axis=2, keepdims=True))
        cum = np.cumsum(w, axis=2)
        u = self._rng.random((self.n_draws, n, N_ACTIONS, 1)) * cum[None, :, :, -1:]
        pick = np.minimum((u >= cum[None]).sum(axis=3), m - 1)  # (D, N, 10)
        sampled = np.take_along_axis(
            np.broadcast_to(here, (self.n_draws, *here.shape)), pick[..., None], axis=3
        )
        best = sampled[..., 0].argmax(axis=2)  # (D, N)
        counts = np.zeros((n, N_ACTIONS))
        np.add.at(counts, (np.tile(rows, self.n_draws), best.reshape(-1)), 1.0)
        return counts / self.n_draws

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        n, m = self._logw.shape[0], self.n_particles
        rows = np.arange(n)
        params = self._particles[rows, actions]  # (N, M, P)
        like = self._like(params, obs)  # (N, M, 4)
        p = responses_from_like(like.reshape(n * m, 1, -1).transpose(0, 2, 1), np.repeat(obs.slot, m))
        # responses_from_like sees each particle as a one-action person: column 0 is the action taken.
        observed = p[np.arange(n * m), 0, np.repeat(responses, m)].reshape(n, m)
        self._logw[rows, actions] += np.log(np.maximum(observed, LIKELIHOOD_FLOOR))

    def belief(self) -> np.ndarray | None:
        return None

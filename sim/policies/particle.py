"""Particle posterior over continuous profiles, acting by posterior sampling (teacher on continuous users).

Each user gets ``n_particles`` profiles drawn from the prior (:func:`sim.profiles.sample_profiles` with
mode ``prior``, default the in-distribution ``continuous``), weighted by the likelihood of every observed
response under :func:`sim.response.response_probs`. The recommendation distribution is
``sum_m w_m * onehot(argmax_a P_m(accept a | state))``. When the effective sample size falls below
``resample_below * n_particles`` the particles are resampled and jittered (traits by ``jitter`` x the prior
range, reward weights by a log-normal factor), a kernel-smoothing step that keeps the cloud from collapsing
on one imperfect particle.

With ``act="mean"`` it instead recommends the argmax of the posterior-mean P(accept) (greedy; registered as
``particle-greedy``).

``belief()`` is the posterior mass of the particles whose nearest archetype is each of ``ARCHETYPE_NAMES``.
Work is done in chunks of users so memory stays bounded at large ``N x M``.
"""

from __future__ import annotations

import numpy as np

from domain import N_ACTIONS
from sim.env import Observation
from sim.policies.base import one_hot, weighted_one_hot
from sim.profiles import ARCHETYPE_NAMES, ID_RANGES, sample_profiles
from sim.response import response_probs

LIKELIHOOD_FLOOR = 1e-3
CHUNK_ROWS = 32768


class ParticlePolicy:
    name = "particle"

    def __init__(
        self,
        n_particles: int = 64,
        prior: str = "continuous",
        resample_below: float = 0.3,
        jitter: float = 0.04,
        act: str = "sample",
    ) -> None:
        if act not in ("sample", "mean"):
            raise ValueError("act must be 'sample' (posterior sampling) or 'mean' (greedy on posterior mean)")
        self.act = act
        self.n_particles = n_particles
        self.prior = prior
        self.resample_below = resample_below
        self.jitter = jitter
        self._rng = np.random.default_rng(0)
        self._cache: tuple[int, np.ndarray] | None = None

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self._rng = rng
        self._n = n_users
        self.particles = sample_profiles(rng, n_users * self.n_particles, self.prior)
        self._logw = np.zeros((n_users, self.n_particles))
        self._nearest = self.particles.nearest_archetype().reshape(n_users, self.n_particles)
        self._cache = None

    def _particle_probs(self, obs: Observation) -> np.ndarray:
        """``(N, M, 10, 3)`` response probabilities of every particle, cached per timestep."""
        if self._cache is not None and self._cache[0] == obs.t:
            return self._cache[1]
        m = self.n_particles
        out = np.empty((self._n, m, N_ACTIONS, 3))
        users_per_chunk = max(1, CHUNK_ROWS // m)
        for lo in range(0, self._n, users_per_chunk):
            hi = min(self._n, lo + users_per_chunk)
            part = self.particles.take(slice(lo * m, hi * m))
            p = response_probs(part, np.repeat(obs.meters[lo:hi], m, axis=0), np.repeat(obs.slot[lo:hi], m))
            out[lo:hi] = p.reshape(hi - lo, m, N_ACTIONS, 3)
        self._cache = (obs.t, out)
        return out

    def weights(self) -> np.ndarray:
        w = np.exp(self._logw - self._logw.max(axis=1, keepdims=True))
        return np.asarray(w / w.sum(axis=1, keepdims=True))

    def probs(self, obs: Observation) -> np.ndarray:
        p = self._particle_probs(obs)
        if self.act == "mean":
            mean_accept = np.einsum("nma,nm->na", p[:, :, :, 0], self.weights())
            return one_hot(mean_accept.argmax(axis=1))
        best = p[:, :, :, 0].argmax(axis=2)  # (N, M)
        return weighted_one_hot(best, self.weights())

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        p = self._particle_probs(obs)
        rows = np.arange(self._n)
        lik = p[rows, :, actions, responses]  # (N, M)
        self._logw = self._logw + np.log(np.maximum(lik, LIKELIHOOD_FLOOR))
        self._logw -= self._logw.max(axis=1, keepdims=True)
        self._maybe_resample()

    def _maybe_resample(self) -> None:
        w = self.weights()
        ess = 1.0 / (w**2).sum(axis=1)
        users = np.flatnonzero(ess < self.resample_below * self.n_particles)
        if users.size == 0:
            return
        m = self.n_particles
        cum = np.cumsum(w[users], axis=1)
        cum[:, -1] = 1.0
        # Systematic resampling: one uniform offset per user.
        u = (self._rng.random((users.size, 1)) + np.arange(m)[None, :]) / m
        picks = (u[:, :, None] > cum[:, None, :]).sum(axis=2)
        src = (users[:, None] * m + picks).reshape(-1)
        dst = (users[:, None] * m + np.arange(m)[None, :]).reshape(-1)
        span = ID_RANGES[:, 1] - ID_RANGES[:, 0]
        traits = (
            self.particles.traits[src]
            + self._rng.normal(0.0, 1.0, (src.size, span.size)) * span * self.jitter
        )
        weights = self.particles.weights[src] * np.exp(self._rng.normal(0.0, 2 * self.jitter, (src.size, 5)))
        self.particles.traits[dst] = traits
        self.particles.weights[dst] = weights / weights.sum(axis=1, keepdims=True)
        self.particles.archetype[dst] = -1
        self._logw[users] = 0.0
        moved = self.particles.take(dst)
        self._nearest[users] = moved.nearest_archetype().reshape(users.size, m)
        self._cache = None

    def belief(self) -> np.ndarray | None:
        w = self.weights()
        out = np.zeros((self._n, len(ARCHETYPE_NAMES)))
        rows = np.repeat(np.arange(self._n), self.n_particles)
        np.add.at(out, (rows, self._nearest.reshape(-1)), w.reshape(-1))
        return out

"""Exact Bayes over the 3 archetypes, acting by posterior sampling; and its single-user form for the service.

The posterior over ``ARCHETYPE_NAMES`` starts uniform and is multiplied, after every interaction, by each
archetype's probability of the observed response (accepted / ignored / rescheduled) to the recommended
action in that state, from :func:`sim.response.response_probs`. The recommendation distribution is posterior
sampling: ``sum_k posterior_k * onehot(argmax_a P_k(accept a | state))``.

:func:`exact_bayes_distribution` is the service's fallback: it takes a person's history of
:class:`domain.Interaction` (meters from real devices, responses from a real person) and the current
:class:`domain.SlotState`, and returns the 10-action distribution (ACTIONS order, every action >=
``floor``) and the posterior by archetype name. Any valid input works, including an empty history and
responses an archetype would hardly give (likelihoods are floored at ``LIKELIHOOD_FLOOR`` so no archetype is
ruled out by one surprising answer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from domain import N_ACTIONS, RESPONSES, Action, Interaction, Response, SlotState
from sim.env import Observation
from sim.policies.base import floor_distribution, weighted_one_hot
from sim.profiles import ARCHETYPE_NAMES, ProfileBatch, archetype_batch
from sim.response import response_probs

LIKELIHOOD_FLOOR = 1e-3
DEFAULT_FLOOR = 0.005
K = len(ARCHETYPE_NAMES)


def _archetype_probs(meters: np.ndarray, slot: np.ndarray, hypotheses: ProfileBatch) -> np.ndarray:
    """``(N, K, 10, 3)`` response probabilities of every hypothesis in every user's state."""
    n, k = meters.shape[0], len(hypotheses)
    tiled = ProfileBatch(
        np.tile(hypotheses.traits, (n, 1)),
        np.tile(hypotheses.weights, (n, 1)),
        np.tile(hypotheses.archetype, n),
    )
    p = response_probs(tiled, np.repeat(meters, k, axis=0), np.repeat(slot, k))
    return p.reshape(n, k, N_ACTIONS, 3)


def _normalise_log(logp: np.ndarray) -> np.ndarray:
    shifted = logp - logp.max(axis=-1, keepdims=True)
    p = np.exp(shifted)
    return np.asarray(p / p.sum(axis=-1, keepdims=True))


class ExactBayesPolicy:
    """Posterior over the archetypes per user; recommends by posterior sampling."""

    name = "bayes"

    def __init__(self) -> None:
        self.hypotheses = archetype_batch()
        self._logpost = np.zeros((0, K))
        self._cache: tuple[int, np.ndarray] | None = None

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self._logpost = np.full((n_users, K), -np.log(K))
        self._cache = None

    def _probs_for(self, obs: Observation) -> np.ndarray:
        if self._cache is None or self._cache[0] != obs.t:
            self._cache = (obs.t, _archetype_probs(obs.meters, obs.slot, self.hypotheses))
        return self._cache[1]

    def probs(self, obs: Observation) -> np.ndarray:
        p = self._probs_for(obs)
        best = p[:, :, :, 0].argmax(axis=2)  # (N, K)
        return weighted_one_hot(best, _normalise_log(self._logpost))

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        p = self._probs_for(obs)
        rows = np.arange(len(obs))
        lik = p[rows, :, actions, responses]  # (N, K)
        self._logpost = self._logpost + np.log(np.maximum(lik, LIKELIHOOD_FLOOR))
        self._logpost -= self._logpost.max(axis=1, keepdims=True)

    def belief(self) -> np.ndarray | None:
        return _normalise_log(self._logpost)


def exact_bayes_distribution(
    history: Sequence[Interaction], current: SlotState, *, floor: float = DEFAULT_FLOOR
) -> tuple[np.ndarray, dict[str, float]]:
    """One person's recommendation distribution (10,) and posterior ``{archetype name: probability}``."""
    if not 0.0 <= floor * N_ACTIONS < 1.0:
        raise ValueError(f"floor must be in [0, {1.0 / N_ACTIONS})")
    hyp = archetype_batch()
    logpost = np.zeros(K)
    if history:
        meters = np.array([h.state.meters.as_tuple() for h in history], dtype=np.float64)
        slots = np.array([int(h.state.slot) for h in history], dtype=np.int64)
        # Coerce through the enums so plain strings from a database row work as well as enum members.
        actions = np.array([Action(h.action).index for h in history], dtype=np.int64)
        responses = np.array([RESPONSES.index(Response(h.response)) for h in history], dtype=np.int64)
        p = _archetype_probs(meters, slots, hyp)  # (H, K, 10, 3)
        lik = p[np.arange(len(history)), :, actions, responses]
        logpost = np.log(np.maximum(lik, LIKELIHOOD_FLOOR)).sum(axis=0)
    post = _normalise_log(logpost)
    now = _archetype_probs(
        np.array([current.meters.as_tuple()], dtype=np.float64), np.array([int(current.slot)]), hyp
    )[0]
    best = now[:, :, 0].argmax(axis=1)  # (K,)
    dist = weighted_one_hot(best[None, :], post[None, :])[0]
    dist = floor_distribution(dist, floor)
    dist = dist / dist.sum()
    return dist, {name: float(post[i]) for i, name in enumerate(ARCHETYPE_NAMES)}

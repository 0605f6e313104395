"""Decision-pretrained-transformer data (Lee et al., NeurIPS 2023): histories from many behaviours, labelled
with the hidden person's *true* best action.

The teacher recipe (:mod:`policy.teacher`) labels each decision with a particle posterior whose prior is the
simulator's own profile space: a model distilled from it can only be as good as that prior, and it learns to
recognise the simulator's people rather than to read a person. Here the label of every decision is the true
acceptance of each action in that state (known in simulation), softened only at ``target_beta`` in batching.
Trained with a cross-entropy on it, the model's distribution given a history approximates the posterior
probability that each action is the best one: sampling from it *is* posterior sampling, whatever generator
the person came from, and no hand-built teacher is needed for a new family.

Histories come from a mix of behaviours, one per user, so the model sees what its own deployment produces
and what others would: uniform random, a per-(slot, action) Thompson bandit, and a noisy oracle (a softmax
of the true acceptance at a random sharpness, mixed with uniform exploration) that yields the long runs of
accepted recommendations a good policy produces.
"""

from __future__ import annotations

import numpy as np

from domain import N_ACTIONS
from policy.teacher import Episodes, softmax_policy
from sim.env import Observation
from sim.policies.thompson import ThompsonPolicy
from sim.profiles import ProfileBatch, sample_profiles
from sim.response import accept_probs
from sim.rollout import rollout

# Share of users per behaviour: uniform, Thompson, noisy oracle.
BEHAVIOUR_SHARES = (0.2, 0.35, 0.45)
ORACLE_BETA = (5.0, 40.0)
ORACLE_EPSILON = (0.0, 0.5)


class MixedBehaviour:
    """Each user acts by one behaviour drawn at reset; the rollout sees one vectorised policy."""

    name = "dpt-behaviour"

    def __init__(self, profiles: ProfileBatch) -> None:
        self.profiles = profiles
        self.thompson = ThompsonPolicy(n_draws=32)
        self._kind = np.zeros(0, dtype=np.int64)
        self._beta = np.zeros(0)
        self._epsilon = np.zeros(0)

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self._kind = rng.choice(len(BEHAVIOUR_SHARES), size=n_users, p=BEHAVIOUR_SHARES)
        self._beta = rng.uniform(*ORACLE_BETA, size=n_users)
        self._epsilon = rng.uniform(*ORACLE_EPSILON, size=n_users)
        self.thompson.reset(n_users, rng)

    def probs(self, obs: Observation) -> np.ndarray:
        n = len(obs)
        out = np.full((n, N_ACTIONS), 1.0 / N_ACTIONS)
        bandit = self._kind == 1
        if bandit.any():
            out[bandit] = self.thompson.probs(obs)[bandit]
        oracle = self._kind == 2
        if oracle.any():
            p = accept_probs(self.profiles, obs.meters, obs.slot, obs.day, obs.t)
            soft = softmax_policy(p * self._beta[:, None], 1.0)
            eps = self._epsilon[:, None]
            out[oracle] = ((1.0 - eps) * soft + eps / N_ACTIONS)[oracle]
        return out

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        self.thompson.update(obs, actions, responses)

    def belief(self) -> np.ndarray | None:
        return None


def generate_dpt_episodes(n_users: int, weeks: int, seed: int, mode: str) -> Episodes:
    """``n_users`` people of profile ``mode`` for ``weeks`` weeks under the behaviour mix; the episodes carry
    the true P(accept) of every action at every step as the label (``beta`` is set by the batching)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    profiles = sample_profiles(rng, n_users, mode)
    trajectories = rollout(MixedBehaviour(profiles), profiles, weeks, seed)
    return Episodes(trajectories, trajectories.p_accept, beta=0.0)

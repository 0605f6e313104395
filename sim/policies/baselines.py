"""Policies that do not learn: uniform random, a fixed human schedule, and the oracle that knows the
profile."""

from __future__ import annotations

import numpy as np

from domain import N_ACTIONS, Action
from sim.env import Observation
from sim.policies.base import one_hot
from sim.profiles import ProfileBatch
from sim.response import accept_probs

_ = Action  # schedule table below is written with Action names

# SCHEDULE[day, slot]: a sensible week for a generic person: focused work in the morning, lighter work in the
# afternoon, body and people in the evening, sleep at night; a softer weekend.
SCHEDULE: np.ndarray = np.array(
    [
        [Action.DEEP_WORK, Action.ADMIN_WORK, Action.EXERCISE, Action.SLEEP],  # Mon
        [Action.DEEP_WORK, Action.LEARN, Action.FAMILY_TIME, Action.SLEEP],  # Tue
        [Action.DEEP_WORK, Action.ADMIN_WORK, Action.EXERCISE, Action.SLEEP],  # Wed
        [Action.DEEP_WORK, Action.LEARN, Action.FAMILY_TIME, Action.SLEEP],  # Thu
        [Action.DEEP_WORK, Action.ADMIN_WORK, Action.SOCIALIZE, Action.SLEEP],  # Fri
        [Action.EXERCISE, Action.FAMILY_TIME, Action.SOCIALIZE, Action.SLEEP],  # Sat
        [Action.MEDITATE, Action.FAMILY_TIME, Action.ME_TIME, Action.SLEEP],  # Sun
    ],
    dtype=object,
)
SCHEDULE_INDEX: np.ndarray = np.vectorize(lambda a: a.index)(SCHEDULE).astype(np.int64)


class RandomPolicy:
    """Uniform over the 10 actions: the floor every learner must beat."""

    name = "random"

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self._n = n_users

    def probs(self, obs: Observation) -> np.ndarray:
        return np.full((len(obs), N_ACTIONS), 1.0 / N_ACTIONS)

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        return None

    def belief(self) -> np.ndarray | None:
        return None


class HeuristicPolicy:
    """The fixed weekly ``SCHEDULE``, the same for everyone."""

    name = "heuristic"

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self._n = n_users

    def probs(self, obs: Observation) -> np.ndarray:
        return one_hot(SCHEDULE_INDEX[obs.day, obs.slot])

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        return None

    def belief(self) -> np.ndarray | None:
        return None


class OraclePolicy:
    """Knows each user's true profile; recommends argmax P(accept) in the current state (the upper bound)."""

    name = "oracle"

    def __init__(self, profiles: ProfileBatch) -> None:
        self.profiles = profiles

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        if n_users != len(self.profiles):
            raise ValueError(f"oracle built for {len(self.profiles)} users, reset with {n_users}")

    def probs(self, obs: Observation) -> np.ndarray:
        return one_hot(accept_probs(self.profiles, obs.meters, obs.slot, obs.day, obs.t).argmax(axis=1))

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        return None

    def belief(self) -> np.ndarray | None:
        return None

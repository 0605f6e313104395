"""``blind:SPEC`` and ``missing:SPEC``: any policy as it runs for a person with no device connected.

The service then has no meters: it stores them as NULL, and the prompt shows each as missing (renderer
version 2, a token of its own) or as the neutral 0.5 (version 1). ``blind:`` hands the wrapped policy neutral
meters (0.5 each); ``missing:`` hands it NaN, which the model policies render as missing meters in the
version their model reads (so ``missing:model`` of a version-1 model equals ``blind:model``). Policies that
compute with the meters need ``blind:``. Either way the person's hidden state still evolves and still drives
their answers: comparing ``blind:X`` / ``missing:X`` with ``X`` on the same users is the cost of having no
device.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.env import Observation
from sim.policies.base import Policy

NEUTRAL_METER = 0.5


def blind(obs: Observation, value: float = NEUTRAL_METER) -> Observation:
    return dataclasses.replace(obs, meters=np.full_like(obs.meters, value, dtype=float))


class BlindPolicy:
    def __init__(self, base: Policy, name: str, value: float = NEUTRAL_METER) -> None:
        self.base = base
        self.name = name
        self.value = value

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self.base.reset(n_users, rng)

    def probs(self, obs: Observation) -> np.ndarray:
        return self.base.probs(blind(obs, self.value))

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        self.base.update(blind(obs, self.value), actions, responses)

    def belief(self) -> np.ndarray | None:
        return self.base.belief()

"""``blind:SPEC``: any policy as it runs for a person with no device connected.

The service then has no meters and shows the model neutral ones (0.5 each, ``neutral_meters`` on the row);
this wrapper hands the wrapped policy exactly that, while the person's hidden state still evolves and still
drives their answers. Comparing ``blind:X`` with ``X`` on the same users is the cost of having no device.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.env import Observation
from sim.policies.base import Policy

NEUTRAL_METER = 0.5


def blind(obs: Observation) -> Observation:
    return dataclasses.replace(obs, meters=np.full_like(obs.meters, NEUTRAL_METER))


class BlindPolicy:
    def __init__(self, base: Policy, name: str) -> None:
        self.base = base
        self.name = name

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self.base.reset(n_users, rng)

    def probs(self, obs: Observation) -> np.ndarray:
        return self.base.probs(blind(obs))

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        self.base.update(blind(obs), actions, responses)

    def belief(self) -> np.ndarray | None:
        return self.base.belief()

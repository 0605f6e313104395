"""``blind:SPEC``: the wrapped policy sees neutral meters; the answers still come from the person's state."""

from __future__ import annotations

import numpy as np
import pytest

from sim.env import Observation
from sim.policies import make_policy
from sim.profiles import sample_profiles
from sim.rollout import rollout
from sim.seeds import reserve_seeds, training_seed_overlap


class Recorder:
    """A uniform policy that remembers the meters it was shown."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def reset(self, n_users: int, rng: np.random.Generator) -> None:
        self.seen = []

    def probs(self, obs: Observation) -> np.ndarray:
        self.seen.append(obs.meters.copy())
        return np.full((len(obs), 10), 0.1)

    def update(self, obs: Observation, actions: np.ndarray, responses: np.ndarray) -> None:
        self.seen.append(obs.meters.copy())

    def belief(self) -> np.ndarray | None:
        return None


def test_the_wrapped_policy_sees_only_neutral_meters_while_the_state_moves() -> None:
    from sim import policies

    recorder = Recorder()
    policies.register_policy("recorder", lambda arg, profiles: recorder)
    profiles = sample_profiles(np.random.default_rng(7), 5, "archetypes")
    traj = rollout(make_policy("blind:recorder", profiles), profiles, 1, 11)
    assert recorder.seen and all(np.all(m == 0.5) for m in recorder.seen)
    # The people's own meters were not neutral: the environment kept its state.
    assert not np.allclose(traj.meters, 0.5)

    plain = Recorder()
    policies.register_policy("recorder", lambda arg, profiles: plain)
    rollout(make_policy("recorder", profiles), profiles, 1, 11)
    assert any(not np.all(m == 0.5) for m in plain.seen)


def test_blind_needs_a_policy_and_keeps_its_training_seeds() -> None:
    with pytest.raises(ValueError):
        make_policy("blind", sample_profiles(np.random.default_rng(1), 2, "archetypes"))
    reserve_seeds("trained-thing", lambda arg: frozenset({3, 4}))
    assert training_seed_overlap(["blind:trained-thing", "blind:random"], range(5)) == {
        "blind:trained-thing": [3, 4]
    }


def test_missing_hands_nan_meters_to_the_wrapped_policy() -> None:
    from sim import policies

    recorder = Recorder()
    policies.register_policy("recorder", lambda arg, profiles: recorder)
    profiles = sample_profiles(np.random.default_rng(7), 4, "archetypes")
    traj = rollout(make_policy("missing:recorder", profiles), profiles, 1, 11)
    assert recorder.seen and all(np.isnan(m).all() for m in recorder.seen)
    assert not np.isnan(traj.meters).any()
    with pytest.raises(ValueError):
        make_policy("missing", profiles)

"""A vectorised life environment over N users with hidden profiles.

All users advance in lockstep through weeks of 28 slots (timestep 0 = Monday Morning; ``day = (t // 4) % 7``,
``slot = t % 4``). ``reset(seed)`` draws start meters uniformly in [0.55, 0.80]; ``step(actions)`` samples
each user's response to the recommended action from :func:`sim.response.response_probs` (codes 0/1/2 =
accepted, ignored, rescheduled, in ``RESPONSES`` order), applies the action's effect only when accepted
(where it is not, the effect of what the person does of their own accord, when the caller says: ``own``),
then passive decay and random events, and clamps to [0, 1]. Rewards are +1 for accepted, -1 otherwise.
Everything random comes from one ``numpy.random.Generator`` seeded by ``reset``, so a run is deterministic
per seed and actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domain import N_ACTIONS, SLOTS_PER_DAY, SLOTS_PER_WEEK
from sim.dynamics import apply_step, sample_events
from sim.profiles import ProfileBatch
from sim.response import ACCEPTED, response_probs, sample_responses

START_RANGE = (0.55, 0.80)


@dataclass(frozen=True)
class Observation:
    """What a policy sees before recommending: timestep ``t`` (global), ``day (N,)``, ``slot (N,)``,
    ``meters (N, 5)``. Nothing hidden (profiles, events) is in here."""

    t: int
    day: np.ndarray
    slot: np.ndarray
    meters: np.ndarray

    def __len__(self) -> int:
        return int(self.meters.shape[0])


@dataclass(frozen=True)
class StepResult:
    """One step's outcome: ``responses (N,)`` codes, ``rewards (N,)`` +1/-1, ``probs (N, 10, 3)`` the response
    model's probabilities in the pre-step state, ``event (N,)`` event index or -1, and the next
    observation."""

    responses: np.ndarray
    rewards: np.ndarray
    probs: np.ndarray
    event: np.ndarray
    obs: Observation


class LifeEnv:
    """N users with the given hidden profiles, simulated together."""

    def __init__(self, profiles: ProfileBatch, *, events: bool = True) -> None:
        self.profiles = profiles
        self.events = events
        self._rng = np.random.default_rng(0)
        self._t = 0
        self._meters = np.zeros((len(profiles), 5))

    @property
    def n_users(self) -> int:
        return len(self.profiles)

    def observation(self) -> Observation:
        n = self.n_users
        day = np.full(n, (self._t // SLOTS_PER_DAY) % (SLOTS_PER_WEEK // SLOTS_PER_DAY), dtype=np.int64)
        slot = np.full(n, self._t % SLOTS_PER_DAY, dtype=np.int64)
        return Observation(self._t, day, slot, self._meters.copy())

    def reset(self, seed: int | np.random.SeedSequence) -> Observation:
        self._rng = np.random.default_rng(seed)
        self._t = 0
        self._meters = self._rng.uniform(*START_RANGE, size=(self.n_users, 5))
        return self.observation()

    def response_probs(self) -> np.ndarray:
        """``(N, 10, 3)`` response probabilities in the current state (what the oracle knows)."""
        obs = self.observation()
        return response_probs(self.profiles, obs.meters, obs.slot, obs.day, obs.t)

    def step(
        self, actions: np.ndarray, probs: np.ndarray | None = None, own: np.ndarray | None = None
    ) -> StepResult:
        """Advance one slot. ``probs`` may pass in this state's :meth:`response_probs` to avoid
        recomputing. ``own (N,)``: what each person does in this slot of their own accord (an action index,
        -1 for nothing, e.g. a party in their calendar), performed instead where they do not accept the
        recommendation. It draws nothing from the generator: responses and events stay those of the same
        run without it."""
        actions = self._checked(actions, "actions", 0)
        own = None if own is None else self._checked(own, "own", -1)
        obs = self.observation()
        if probs is None:
            probs = response_probs(self.profiles, obs.meters, obs.slot, obs.day, obs.t)
        responses = sample_responses(self._rng, probs, actions)
        if self.events:
            event, event_deltas = sample_events(self._rng, self.n_users)
        else:
            event, event_deltas = np.full(self.n_users, -1, dtype=np.int64), None
        accepted = responses == ACCEPTED
        performed, done = actions, accepted
        if own is not None:
            instead = ~accepted & (own >= 0)
            performed, done = np.where(instead, own, actions), accepted | instead
        self._meters = apply_step(self.profiles, obs.meters, obs.slot, performed, done, event_deltas)
        self._t += 1
        rewards = np.where(responses == ACCEPTED, 1, -1).astype(np.int64)
        return StepResult(responses, rewards, probs, event, self.observation())

    def _checked(self, values: np.ndarray, name: str, low: int) -> np.ndarray:
        values = np.asarray(values, dtype=np.int64)
        if (
            values.shape != (self.n_users,)
            or values.min(initial=low) < low
            or values.max(initial=0) >= N_ACTIONS
        ):
            raise ValueError(f"{name} must be ({self.n_users},) ints in [{low}, {N_ACTIONS})")
        return values

"""Run a policy on N simulated users for W weeks and keep everything (training data and benchmark input).

``rollout(policy, profiles, weeks, seed)`` returns :class:`Trajectories`, arrays indexed ``[user, step]``:
``day``, ``slot``, ``meters`` (before the step), ``actions``, ``responses`` (0/1/2 = accepted/ignored/
rescheduled), ``probs`` (the policy's full 10-action distribution the action was sampled from), ``belief``
(its posterior over ``ARCHETYPE_NAMES`` before acting, or ``None``), ``p_accept`` (the true P(accept) of
every action in that state, for regret) and ``event``; plus ``final_belief`` after the last update, the
``profiles`` and ``p_response`` (the true accepted/ignored/rescheduled probabilities of the action taken:
the expected value of ``responses``, a noise-free training label).

Seeding: ``SeedSequence(seed)`` spawns the environment's, the policy's and the action sampler's generators, so
a rollout is deterministic per seed, and two policies run with the same seed see the same start meters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from domain import N_ACTIONS, SLOTS_PER_WEEK
from sim.env import LifeEnv
from sim.policies.base import Policy
from sim.profiles import ProfileBatch
from sim.response import ACCEPTED


@dataclass(frozen=True)
class Trajectories:
    day: np.ndarray  # (N, T) int
    slot: np.ndarray  # (N, T) int
    meters: np.ndarray  # (N, T, 5) before the step
    actions: np.ndarray  # (N, T) int, ACTIONS index
    responses: np.ndarray  # (N, T) int, RESPONSES index
    probs: np.ndarray  # (N, T, 10) the policy's distribution
    belief: np.ndarray | None  # (N, T, 3) before acting
    final_belief: np.ndarray | None  # (N, 3) after the last update
    p_accept: np.ndarray  # (N, T, 10) true P(accept) of every action
    event: np.ndarray  # (N, T) int, -1 = none
    profiles: ProfileBatch
    p_response: np.ndarray | None = None  # (N, T, 3) true response distribution of the chosen action

    @property
    def n_users(self) -> int:
        return int(self.actions.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.actions.shape[1])

    @property
    def accepted(self) -> np.ndarray:
        return np.asarray(self.responses == ACCEPTED)


def _sample_actions(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    cum = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cum[:, -1]
    return np.asarray(np.minimum((u[:, None] >= cum).sum(axis=1), N_ACTIONS - 1))


def rollout(
    policy: Policy,
    profiles: ProfileBatch,
    weeks: int,
    seed: int,
    *,
    events: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Trajectories:
    """Simulate ``weeks * 28`` slots of ``policy`` on the users with ``profiles`` (see module docstring)."""
    if weeks < 1:
        raise ValueError("weeks must be >= 1")
    n, steps = len(profiles), weeks * SLOTS_PER_WEEK
    env_seed, policy_seed, action_seed = np.random.SeedSequence(seed).spawn(3)
    env = LifeEnv(profiles, events=events)
    obs = env.reset(env_seed)
    policy.reset(n, np.random.default_rng(policy_seed))
    action_rng = np.random.default_rng(action_seed)

    day = np.empty((n, steps), dtype=np.int64)
    slot = np.empty((n, steps), dtype=np.int64)
    meters = np.empty((n, steps, 5))
    actions = np.empty((n, steps), dtype=np.int64)
    responses = np.empty((n, steps), dtype=np.int64)
    probs = np.empty((n, steps, N_ACTIONS))
    p_accept = np.empty((n, steps, N_ACTIONS))
    event = np.empty((n, steps), dtype=np.int64)
    p_response = np.empty((n, steps, 3))
    rows = np.arange(n)
    beliefs: list[np.ndarray] = []
    has_belief = policy.belief() is not None

    for t in range(steps):
        if has_belief:
            b = policy.belief()
            assert b is not None
            beliefs.append(b)
        dist = policy.probs(obs)
        act = _sample_actions(action_rng, dist)
        env_probs = env.response_probs()
        result = env.step(act, env_probs)
        policy.update(obs, act, result.responses)
        day[:, t], slot[:, t], meters[:, t] = obs.day, obs.slot, obs.meters
        actions[:, t], responses[:, t], probs[:, t] = act, result.responses, dist
        p_accept[:, t], event[:, t] = env_probs[:, :, ACCEPTED], result.event
        p_response[:, t] = env_probs[rows, act]
        obs = result.obs
        if on_step is not None:
            on_step(t)

    belief = np.stack(beliefs, axis=1) if has_belief else None
    return Trajectories(
        day,
        slot,
        meters,
        actions,
        responses,
        probs,
        belief,
        policy.belief(),
        p_accept,
        event,
        profiles,
        p_response,
    )

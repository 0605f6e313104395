"""The user response model: how likely a person is to accept, ignore or reschedule each recommended action.

For a profile with reward weights ``w`` in meters ``x`` at slot ``s``, the utility of action ``a`` is the
weighted gain in a concave meter value ``v(m) = 1 - (1 - m)^2`` (a low meter is worth more to raise), using
the profile's own expected deltas from :func:`sim.dynamics.all_action_deltas` (modifiers, chronotype, time
of day):

    u[a, s] = sum_m w_m * (v(clip(x_m + delta[a, s, m])) - v(x_m)) + pref[a]

with small trait-driven preference terms ``pref`` (anticipated discomfort: SOCIALIZE -0.02*social_cost,
BINGE_WATCH -0.02*leisure_guilt). Utilities are contrasted against the alternatives in this slot,
``z = (u - mean_a u) / max(std_a u, 0.004)``, and

* ``P(accepted)    = (1 - IGNORE_BASE - RESCHEDULE_BASE) * sigmoid(SHARPNESS * (z[a, s] - Z0))``
* ``P(rescheduled) = RESCHEDULE_BASE + RESCHEDULE_GAIN * (1 - IGNORE_BASE - RESCHEDULE_BASE) *
  max(0, sigmoid(SHARPNESS * (z_best_other_slot[a] - Z0)) - sigmoid(SHARPNESS * (z[a, s] - Z0)))``
  (liked in another slot of the day, not in this one; ``z_best_other_slot`` uses this slot's mean/std);
* ``P(ignored)     = 1 - the two`` (>= IGNORE_BASE: unobserved reasons).

The output of :func:`response_probs` is ``(N, 10, 3)`` in ``ACTIONS`` x ``RESPONSES`` order (accepted,
ignored, rescheduled). Response codes everywhere in ``sim`` are ints 0/1/2 in that order (``ACCEPTED``,
``IGNORED``, ``RESCHEDULED``). All functions take ``meters (N, 5)`` and ``slot (N,)`` and are vectorised
over users.

Held-out families (:mod:`sim.heldout`) replace ``sigmoid(SHARPNESS * (z - Z0))`` by their own ``like`` of
each action in each slot (which may depend on the weekday and the week, so ``day`` and ``t`` must be given
for them); the accept / reschedule / ignore structure above is the same (:func:`responses_from_like`).
"""

from __future__ import annotations

import numpy as np

from domain import N_ACTIONS, SLOTS_PER_DAY, SLOTS_PER_WEEK, Action
from sim.dynamics import deltas_in_slots
from sim.heldout import FAMILIES
from sim.procedural import PROCEDURAL_FAMILIES
from sim.profiles import TRAIT_INDEX, ProfileBatch

ACCEPTED, IGNORED, RESCHEDULED = 0, 1, 2

IGNORE_BASE = 0.08
RESCHEDULE_BASE = 0.02
RESCHEDULE_GAIN = 0.7
SHARPNESS = 2.5
Z0 = 0.5
STD_FLOOR = 0.004


def _value(m: np.ndarray) -> np.ndarray:
    return 1.0 - (1.0 - m) ** 2


def _preferences(profiles: ProfileBatch) -> np.ndarray:
    pref = np.zeros((len(profiles), N_ACTIONS))
    pref[:, Action.SOCIALIZE.index] -= 0.02 * profiles.traits[:, TRAIT_INDEX["social_cost"]]
    pref[:, Action.BINGE_WATCH.index] -= 0.02 * profiles.traits[:, TRAIT_INDEX["leisure_guilt"]]
    return pref


def _utilities_in_slots(profiles: ProfileBatch, meters: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """``(N, S, 10)`` utilities for ``slots (N, S)``."""
    meters = np.asarray(meters, dtype=np.float64)
    d = deltas_in_slots(profiles, meters, slots)
    nxt = np.clip(meters[:, None, None, :] + d, 0.0, 1.0)
    # v(x + d) - v(x) with v(m) = 1 - (1 - m)^2 equals (x' - x) * (2 - x - x').
    gain = (nxt - meters[:, None, None, :]) * (2.0 - meters[:, None, None, :] - nxt)
    u = np.einsum("nsam,nm->nsa", gain, profiles.weights)
    return np.asarray(u + _preferences(profiles)[:, None, :])


def utilities(profiles: ProfileBatch, meters: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """``(N, 10)`` utility of every action in the given slot (see module docstring)."""
    return _utilities_in_slots(profiles, meters, np.asarray(slot, dtype=np.int64)[:, None])[:, 0]


def _contrast(u_here: np.ndarray, u_other: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    mean = u_here.mean(axis=1, keepdims=True)
    std = np.maximum(u_here.std(axis=1, keepdims=True), STD_FLOOR)
    z_here = (u_here - mean) / std
    z_other = None if u_other is None else (u_other - mean) / std
    return z_here, z_other


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _family_like(
    profiles: ProfileBatch, meters: np.ndarray, day: np.ndarray | None, t: int | np.ndarray | None
) -> np.ndarray:
    """``(N, 4, 10)`` like of every action in every slot for a held-out family."""
    assert profiles.family is not None and profiles.params is not None
    if day is None or t is None:
        raise ValueError(f"profiles of family {profiles.family!r} need the day and the timestep")
    n = len(profiles)
    week = np.broadcast_to(np.asarray(t, dtype=np.int64) // SLOTS_PER_WEEK, (n,))
    family = FAMILIES.get(profiles.family) or PROCEDURAL_FAMILIES[profiles.family]
    return family.like_all(profiles.params, meters, np.broadcast_to(np.asarray(day), (n,)), week)


def responses_from_like(like_all: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """``(N, 10, 3)`` response probabilities from ``like_all (N, 4, 10)``: accepted when liked here,
    rescheduled (beyond its base rate) as much as it is liked more in another slot of the day."""
    n = like_all.shape[0]
    rows = np.arange(n)
    like_here = like_all[rows, slot]
    other = np.ones((n, SLOTS_PER_DAY), dtype=bool)
    other[rows, slot] = False
    like_other = np.where(other[:, :, None], like_all, -np.inf).max(axis=1)
    live = 1.0 - IGNORE_BASE - RESCHEDULE_BASE
    p_acc = live * like_here
    p_res = RESCHEDULE_BASE + RESCHEDULE_GAIN * live * np.maximum(like_other - like_here, 0.0)
    out = np.empty((n, like_all.shape[2], 3))
    out[:, :, ACCEPTED] = p_acc
    out[:, :, RESCHEDULED] = p_res
    out[:, :, IGNORED] = 1.0 - p_acc - p_res
    return out


def accept_probs(
    profiles: ProfileBatch,
    meters: np.ndarray,
    slot: np.ndarray,
    day: np.ndarray | None = None,
    t: int | np.ndarray | None = None,
) -> np.ndarray:
    """``(N, 10)`` P(accepted) of every action; cheaper than :func:`response_probs` (current slot only)."""
    if profiles.family is not None:
        like = _family_like(profiles, np.asarray(meters, dtype=np.float64), day, t)
        rows = np.arange(len(profiles))
        return np.asarray(
            (1.0 - IGNORE_BASE - RESCHEDULE_BASE) * like[rows, np.asarray(slot, dtype=np.int64)]
        )
    z, _ = _contrast(utilities(profiles, meters, slot))
    return (1.0 - IGNORE_BASE - RESCHEDULE_BASE) * _sigmoid(SHARPNESS * (z - Z0))


def response_probs(
    profiles: ProfileBatch,
    meters: np.ndarray,
    slot: np.ndarray,
    day: np.ndarray | None = None,
    t: int | np.ndarray | None = None,
) -> np.ndarray:
    """``(N, 10, 3)``: P(accepted), P(ignored), P(rescheduled) for every candidate action. ``day`` and ``t``
    (the global timestep) matter only for held-out families, which require them."""
    meters = np.asarray(meters, dtype=np.float64)
    slot = np.asarray(slot, dtype=np.int64)
    if profiles.family is not None:
        return responses_from_like(_family_like(profiles, meters, day, t), slot)
    n = meters.shape[0]
    all_slots = np.broadcast_to(np.arange(SLOTS_PER_DAY), (n, SLOTS_PER_DAY))
    u_all = _utilities_in_slots(profiles, meters, all_slots)  # (N, 4, 10)
    rows = np.arange(n)
    u_here = u_all[rows, slot]
    other = np.ones((n, SLOTS_PER_DAY), dtype=bool)
    other[rows, slot] = False
    u_other = np.where(other[:, :, None], u_all, -np.inf).max(axis=1)
    z_here, z_other = _contrast(u_here, u_other)
    assert z_other is not None
    live = 1.0 - IGNORE_BASE - RESCHEDULE_BASE
    like_here = _sigmoid(SHARPNESS * (z_here - Z0))
    like_other = _sigmoid(SHARPNESS * (z_other - Z0))
    p_acc = live * like_here
    p_res = RESCHEDULE_BASE + RESCHEDULE_GAIN * live * np.maximum(like_other - like_here, 0.0)
    out = np.empty((n, N_ACTIONS, 3))
    out[:, :, ACCEPTED] = p_acc
    out[:, :, RESCHEDULED] = p_res
    out[:, :, IGNORED] = 1.0 - p_acc - p_res
    return out


def sample_responses(rng: np.random.Generator, probs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Draw one response code per user for the chosen ``actions`` from ``probs (N, 10, 3)``."""
    p = probs[np.arange(probs.shape[0]), np.asarray(actions, dtype=np.int64)]  # (N, 3)
    u = rng.random((p.shape[0], 1))
    cum = np.cumsum(p, axis=1)
    return np.asarray(np.minimum((u >= cum).sum(axis=1), 2), dtype=np.int64)

"""Procedurally generated people for meta-training: broad generators that teach in-context learning.

The simulator's own people (:mod:`sim.profiles`) all accept through one utility model, so a model trained only
on them learns to *recognise* that model. These generators draw people whose acceptance depends on slot,
weekday, action and state through structures of many kinds, at many noise levels, some drifting over weeks:
the only way to do well on all of them is to read the person's answers. They are training distributions;
the held-out families (:mod:`sim.heldout`) are different generators (different code, different structure
laws) that nothing in training draws from.

Both follow :class:`sim.heldout.Family`'s interface: per-action ``params (10, P)`` and ``like(params, meters,
day, week) -> (K, 4)``, the probability that a person likes the action in each slot, which
:func:`sim.response.responses_from_like` turns into accepted / ignored / rescheduled.

* ``proc-table``: a dense logit table over (slot, action) with a personal offset, action and slot effects of
  personal scales, a few strongly liked cells, an optional weekend shift per slot, optional per-weekday
  shifts, optional linear drift per week, and a personal sharpness (noise level).
* ``proc-state``: smooth state dependence: each action's logit is an offset plus slot effects plus a sparse
  linear function of the meters around personal centres (0–2 meters per action), active in all slots or
  only in some (slot × state interactions), with centres drifting per week and a personal sharpness.
"""

from __future__ import annotations

import numpy as np

from domain import N_ACTIONS, N_METERS, SLOTS_PER_DAY
from sim.heldout import Family

DAYS = 7
WEEKEND_FIRST_DAY = 5

# proc-table: params per action = [offset, slot x4, weekend x4, day x7, drift x4, sharpness]
_T_OFFSET = 0
_T_SLOT = slice(1, 5)
_T_WEEKEND = slice(5, 9)
_T_DAY = slice(9, 16)
_T_DRIFT = slice(16, 20)
_T_SHARP = 20
TABLE_PARAMS = 21

# proc-state: params per action = [offset, slot x4, weight x5, centre x5, active x4, drift]
_S_OFFSET = 0
_S_SLOT = slice(1, 5)
_S_WEIGHT = slice(5, 10)
_S_CENTRE = slice(10, 15)
_S_ACTIVE = slice(15, 19)
_S_DRIFT = 19
STATE_PARAMS = 20


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _person(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """``(n, 1)`` one draw per person, broadcast over actions."""
    return rng.uniform(low, high, size=(n, 1))


def sample_table(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 10, 21)`` proc-table people."""
    out = np.zeros((n, N_ACTIONS, TABLE_PARAMS))
    offset = _person(rng, n, -3.0, -0.5)
    action_scale = _person(rng, n, 0.2, 2.0)
    out[:, :, _T_OFFSET] = offset + rng.normal(size=(n, N_ACTIONS)) * action_scale
    slot_scale = _person(rng, n, 0.0, 2.0)[:, :, None]
    slot = rng.normal(size=(n, N_ACTIONS, SLOTS_PER_DAY)) * slot_scale
    # A few strongly liked (slot, action) cells: the "favourite thing at that time of day" pattern.
    liked = rng.random((n, N_ACTIONS, SLOTS_PER_DAY)) < _person(rng, n, 0.0, 0.25)[:, :, None]
    slot += np.where(liked, rng.uniform(1.5, 4.5, size=liked.shape), 0.0)
    out[:, :, _T_SLOT] = slot
    weekend = rng.random((n, 1, 1)) < 0.5
    out[:, :, _T_WEEKEND] = np.where(
        weekend, rng.normal(size=(n, N_ACTIONS, SLOTS_PER_DAY)) * _person(rng, n, 0.5, 2.5)[:, :, None], 0.0
    )
    daily = rng.random((n, 1, 1)) < 0.25
    out[:, :, _T_DAY] = np.where(
        daily, rng.normal(size=(n, N_ACTIONS, DAYS)) * _person(rng, n, 0.3, 1.5)[:, :, None], 0.0
    )
    drifting = rng.random((n, 1, 1)) < 0.4
    out[:, :, _T_DRIFT] = np.where(
        drifting,
        rng.normal(size=(n, N_ACTIONS, SLOTS_PER_DAY)) * _person(rng, n, 0.1, 0.6)[:, :, None],
        0.0,
    )
    out[:, :, _T_SHARP] = _person(rng, n, 0.6, 1.6)
    return out


def like_table(params: np.ndarray, meters: np.ndarray, day: np.ndarray, week: np.ndarray) -> np.ndarray:
    """``(K, 4)`` like per slot for per-action ``params (K, 21)`` on ``day (K,)`` in ``week (K,)``."""
    rows = np.arange(params.shape[0])
    day = np.asarray(day, dtype=np.int64)
    z = (
        params[:, _T_OFFSET, None]
        + params[:, _T_SLOT]
        + (day >= WEEKEND_FIRST_DAY)[:, None] * params[:, _T_WEEKEND]
        + params[:, _T_DAY][rows, day][:, None]
        + params[:, _T_DRIFT] * np.asarray(week, dtype=np.float64)[:, None]
    )
    return _sigmoid(params[:, _T_SHARP, None] * z)


def sample_state(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 10, 20)`` proc-state people."""
    out = np.zeros((n, N_ACTIONS, STATE_PARAMS))
    out[:, :, _S_OFFSET] = _person(rng, n, -3.0, -0.8) + rng.normal(size=(n, N_ACTIONS)) * _person(
        rng, n, 0.2, 1.5
    )
    out[:, :, _S_SLOT] = (
        rng.normal(size=(n, N_ACTIONS, SLOTS_PER_DAY)) * _person(rng, n, 0.0, 1.5)[:, :, None]
    )
    # 0, 1 or 2 meters per action, each with a signed slope; the rest of the weights stay 0.
    count = rng.choice(3, size=(n, N_ACTIONS), p=[0.3, 0.45, 0.25])
    rank = rng.random((n, N_ACTIONS, N_METERS)).argsort(axis=2).argsort(axis=2)
    chosen = rank < count[:, :, None]
    slope = rng.uniform(3.0, 14.0, size=chosen.shape) * np.where(rng.random(chosen.shape) < 0.5, -1.0, 1.0)
    out[:, :, _S_WEIGHT] = np.where(chosen, slope, 0.0)
    out[:, :, _S_CENTRE] = rng.uniform(0.25, 0.8, size=(n, N_ACTIONS, N_METERS))
    # The state matters in every slot for most actions, in only some slots for the others (interactions).
    partial = rng.random((n, N_ACTIONS, 1)) < 0.35
    out[:, :, _S_ACTIVE] = np.where(partial, rng.random((n, N_ACTIONS, SLOTS_PER_DAY)) < 0.5, 1.0)
    drifting = rng.random((n, 1)) < 0.4
    out[:, :, _S_DRIFT] = np.where(drifting, rng.uniform(-0.1, 0.1, size=(n, N_ACTIONS)), 0.0)
    return out


def like_state(params: np.ndarray, meters: np.ndarray, day: np.ndarray, week: np.ndarray) -> np.ndarray:
    """``(K, 4)`` like per slot for per-action ``params (K, 20)`` in ``meters (K, 5)`` in ``week (K,)``."""
    centre = params[:, _S_CENTRE] + params[:, _S_DRIFT, None] * np.asarray(week, dtype=np.float64)[:, None]
    state = (params[:, _S_WEIGHT] * (np.asarray(meters, dtype=np.float64) - centre)).sum(axis=1)
    z = params[:, _S_OFFSET, None] + params[:, _S_SLOT] + params[:, _S_ACTIVE] * state[:, None]
    return _sigmoid(z)


PROCEDURAL_FAMILIES: dict[str, Family] = {
    "proc-table": Family("proc-table", TABLE_PARAMS, sample_table, like_table),
    "proc-state": Family("proc-state", STATE_PARAMS, sample_state, like_state),
}
PROCEDURAL_MODES: tuple[str, ...] = tuple(PROCEDURAL_FAMILIES)

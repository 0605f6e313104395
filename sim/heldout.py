"""Held-out profile families: people built by generators that nothing in training uses.

The simulator's own people (:mod:`sim.profiles`) accept what raises their weighted meters, through one utility
model. Pretraining draws every user from that model (archetypes, continuous, ood), so a policy can score well
on them by recognising the generator. The two families here are *different generators*, not other seeds:
acceptance is a table or a rule over (slot, weekday/weekend, action, meters, week), with no utility and no
traits. A held-out person still lives in the simulator's body (neutral traits drive the meter dynamics), so
the meters a policy sees move as usual; only the mind that answers is new.

Each family describes one person by ``params (10, P)``: per action, ``P`` numbers, and ``like(params, meters,
day, week) -> (K, 4)`` gives the probability that a person likes that action in each of the 4 slots. The
response model (:func:`sim.response.response_probs`) turns ``like`` into accept / ignore / reschedule exactly
as it does for the simulator's people (rescheduled = liked in another slot of the day, not in this one).
Actions are exchangeable in both generators, so the prior of one action's column is the same for every
action: the reference learner (:mod:`sim.policies.reference`) uses that marginal as its prior.

* ``heldout-sparse``: a sparse preference table. Each person likes one action per slot (plus each other
  action with probability 8 %) at a level U(0.6, 1.0) and likes the rest at a personal base U(0.03, 0.2);
  the weekend table repeats the weekday slot with probability 0.4, otherwise it is drawn anew. Meters play
  no part: only answers reveal the table, and weekday and weekend must be learnt apart.
* ``heldout-rules``: state thresholds with slot interactions and drift. 3–5 actions per person carry a rule
  "accepted (at U(0.6, 0.95)) when meter m is above / below a threshold U(0.3, 0.75)" (a steep logistic
  step); everything else is accepted at a personal base U(0.05, 0.2). Each (slot, action) cell gets a logit
  shift of ±1.5 with probability 15 %, and every threshold drifts by a personal U(-0.08, 0.08) per week, so
  what was learnt in week 1 is slightly wrong by week 4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from domain import N_ACTIONS, N_METERS, SLOTS_PER_DAY

WEEKEND_FIRST_DAY = 5  # day 5 and 6 (Saturday, Sunday) in the simulator's Monday-first weeks

# heldout-sparse
SPARSE_EXTRA_LIKED = 0.08
SPARSE_LEVEL = (0.6, 1.0)
SPARSE_BASE = (0.03, 0.2)
SPARSE_WEEKEND_SAME = 0.4

# heldout-rules
RULES_COUNT = (3, 5)
RULES_THRESHOLD = (0.3, 0.75)
RULES_HIGH = (0.6, 0.95)
RULES_BASE = (0.05, 0.2)
RULES_DRIFT = 0.08  # per week, either sign
RULES_STEP_WIDTH = 0.04  # logistic step width of a threshold, in meter units
RULES_BONUS = 1.5
RULES_BONUS_PROB = 0.15


def _weekend(day: np.ndarray) -> np.ndarray:
    return np.asarray(day >= WEEKEND_FIRST_DAY)


# --- heldout-sparse: params per action = like in [weekday slot 0..3, weekend slot 0..3] ---------------------


def _sparse_table(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    """(n, 4, 10) like probabilities of one day type."""
    liked = rng.random((n, SLOTS_PER_DAY, N_ACTIONS)) < SPARSE_EXTRA_LIKED
    forced = rng.integers(0, N_ACTIONS, size=(n, SLOTS_PER_DAY))
    np.put_along_axis(liked, forced[:, :, None], True, axis=2)
    level = rng.uniform(*SPARSE_LEVEL, size=(n, SLOTS_PER_DAY, N_ACTIONS))
    return np.where(liked, level, base[:, None, None])


def sample_sparse(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 10, 8)``: per action, like in the 4 weekday then the 4 weekend slots."""
    base = rng.uniform(*SPARSE_BASE, size=n)
    weekday = _sparse_table(rng, n, base)
    redrawn = _sparse_table(rng, n, base)
    same = rng.random((n, SLOTS_PER_DAY, 1)) < SPARSE_WEEKEND_SAME
    weekend = np.where(same, weekday, redrawn)
    return np.concatenate([weekday.transpose(0, 2, 1), weekend.transpose(0, 2, 1)], axis=2)


def like_sparse(params: np.ndarray, meters: np.ndarray, day: np.ndarray, week: np.ndarray) -> np.ndarray:
    """``(K, 4)`` like per slot for per-action ``params (K, 8)`` on ``day (K,)``."""
    return np.where(_weekend(day)[:, None], params[:, SLOTS_PER_DAY:], params[:, :SLOTS_PER_DAY])


# --- heldout-rules: params per action = [is_rule, meter, direction, threshold, drift, high, base, bonus x4]

_R_IS, _R_METER, _R_DIR, _R_THETA, _R_DRIFT, _R_HIGH, _R_BASE = range(7)
_R_BONUS = slice(7, 7 + SLOTS_PER_DAY)


def sample_rules(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 10, 11)``: per action, its rule (or none), the person's base and drift, and 4 slot shifts."""
    out = np.zeros((n, N_ACTIONS, 7 + SLOTS_PER_DAY))
    count = rng.integers(RULES_COUNT[0], RULES_COUNT[1] + 1, size=n)
    rank = rng.random((n, N_ACTIONS)).argsort(axis=1).argsort(axis=1)
    out[:, :, _R_IS] = rank < count[:, None]
    out[:, :, _R_METER] = rng.integers(0, N_METERS, size=(n, N_ACTIONS))
    out[:, :, _R_DIR] = np.where(rng.random((n, N_ACTIONS)) < 0.5, -1.0, 1.0)
    out[:, :, _R_THETA] = rng.uniform(*RULES_THRESHOLD, size=(n, N_ACTIONS))
    out[:, :, _R_DRIFT] = rng.uniform(-RULES_DRIFT, RULES_DRIFT, size=(n, 1))
    out[:, :, _R_HIGH] = rng.uniform(*RULES_HIGH, size=(n, N_ACTIONS))
    out[:, :, _R_BASE] = rng.uniform(*RULES_BASE, size=(n, 1))
    shifted = rng.random((n, N_ACTIONS, SLOTS_PER_DAY)) < RULES_BONUS_PROB
    sign = np.where(rng.random((n, N_ACTIONS, SLOTS_PER_DAY)) < 0.5, -1.0, 1.0)
    out[:, :, _R_BONUS] = np.where(shifted, RULES_BONUS * sign, 0.0)
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(p) - np.log1p(-p))


def like_rules(params: np.ndarray, meters: np.ndarray, day: np.ndarray, week: np.ndarray) -> np.ndarray:
    """``(K, 4)`` like per slot for per-action ``params (K, 11)`` in ``meters (K, 5)`` in ``week (K,)``."""
    meter = np.take_along_axis(meters, params[:, _R_METER].astype(np.int64)[:, None], axis=1)[:, 0]
    theta = params[:, _R_THETA] + params[:, _R_DRIFT] * week
    step = 1.0 / (1.0 + np.exp(-params[:, _R_DIR] * (meter - theta) / RULES_STEP_WIDTH))
    base = params[:, _R_BASE]
    p = base + params[:, _R_IS] * (params[:, _R_HIGH] - base) * step
    z = _logit(p)[:, None] + params[:, _R_BONUS]
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


@dataclass(frozen=True)
class Family:
    """A held-out generator: ``sample(rng, n) -> (n, 10, P)`` and ``like(params (K, P), meters (K, 5), day
    (K,), week (K,)) -> (K, 4)``."""

    name: str
    n_params: int
    sample: Callable[[np.random.Generator, int], np.ndarray]
    like: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

    def like_all(
        self, params: np.ndarray, meters: np.ndarray, day: np.ndarray, week: np.ndarray
    ) -> np.ndarray:
        """``(N, 4, 10)`` like of every action in every slot for ``params (N, 10, P)``."""
        n = params.shape[0]
        flat = self.like(
            params.reshape(n * N_ACTIONS, self.n_params),
            np.repeat(np.asarray(meters, dtype=np.float64), N_ACTIONS, axis=0),
            np.repeat(np.asarray(day), N_ACTIONS),
            np.repeat(np.asarray(week), N_ACTIONS),
        )
        return np.asarray(flat.reshape(n, N_ACTIONS, SLOTS_PER_DAY).transpose(0, 2, 1))


FAMILIES: dict[str, Family] = {
    "heldout-sparse": Family("heldout-sparse", 2 * SLOTS_PER_DAY, sample_sparse, like_sparse),
    "heldout-rules": Family("heldout-rules", 7 + SLOTS_PER_DAY, sample_rules, like_rules),
}
HELDOUT_MODES: tuple[str, ...] = tuple(FAMILIES)

"""What a person's own answers say, combined with the frozen model's distribution (issue 14).

The model reads a person's history in its prompt, but on people unlike the simulator's it does not learn from
it: on the held-out families it stays at random acceptance for four weeks while a prior-free bandit rises
(docs/benchmarks.md). And its probabilities are far too sure off the top choice (a median 12 nats to the
runner-up), so a posterior multiplied onto them from the outside changes nothing. This module is the
combination the service applies once, after every backend and before the exploration floor:

    log pi(a) = sharpness * log p_model(a) + w * logit(mean(a)) + const

* ``sharpness`` (< 1) softens the model's log-probabilities so that its ranking is a prior, not a verdict (at
  0.25 a 12-nat gap becomes 3 nats; on the archetypes this costs nothing measurable: the top choice stays).
* ``mean(a)`` is the posterior mean of P(accept) of action ``a`` in this slot, from a Beta(1, 1) prior and the
  person's answers in the same slot (those on the same kind of day — weekday or weekend — count fully, the
  others with weight ``pool``). An action never tried here has mean 1/2 and logit 0: no optimism, no penalty.
* ``w = weight * (1 - r)``, where ``r`` is the posterior mean of the person's acceptance over all their
  answers (Beta(1, 1)). A person who accepts most of what the model proposes is one it already reads well, so
  their occasional "no" moves little; a person who refuses most of it is one it does not know, and their
  answers take over. Before any answer ``w = weight / 2``, and with no evidence the term is 0 anyway.

Pure numpy on counts, so the service (counts from the feedback table), the simulator benchmarks
(:class:`policy.sim_policy.EvidencePolicy`) and tests run the same arithmetic. Settings choose the
parameters; ``weight = 0`` turns the combination off.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domain import ACTIONS, N_ACTIONS, SLOTS_PER_DAY, Action, Interaction, Response

WEEKEND_DAYS = frozenset({5, 6})  # Saturday, Sunday (weekday numbers, Monday = 0)
_ACTION_INDEX = {action: index for index, action in enumerate(ACTIONS)}
_TINY = 1e-300


def day_type(weekday: int) -> int:
    """0 for a weekday, 1 for a weekend day."""
    return 1 if weekday in WEEKEND_DAYS else 0


def day_types(weekdays: np.ndarray) -> np.ndarray:
    """:func:`day_type` of each weekday in an array."""
    return np.isin(weekdays, list(WEEKEND_DAYS)).astype(np.int64)


def slot_counts(counts: np.ndarray, weekdays: np.ndarray, slots: np.ndarray, pool: float) -> np.ndarray:
    """``(N, A)`` from ``counts (N, 2, SLOTS_PER_DAY, A)``: each row's counts in its slot, its kind of day's
    plus ``pool`` × the other kind's (the one pooling rule, for one person or a batch of simulated ones)."""
    rows = np.arange(len(slots))
    here = day_types(weekdays)
    return np.asarray(counts[rows, here, slots] + pool * counts[rows, 1 - here, slots])


@dataclass(frozen=True)
class EvidenceConfig:
    """How strongly a person's answers move the model's distribution (see the module docstring)."""

    weight: float = 12.0
    sharpness: float = 0.25
    pool: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0.0):
            raise ValueError("evidence weight must be a finite number >= 0")
        if not (math.isfinite(self.sharpness) and 0.0 < self.sharpness <= 1.0):
            raise ValueError("evidence sharpness must be in (0, 1]")
        if not (math.isfinite(self.pool) and 0.0 <= self.pool <= 1.0):
            raise ValueError("evidence pool must be in [0, 1]")

    @property
    def enabled(self) -> bool:
        return self.weight > 0.0

    def as_dict(self) -> dict[str, float]:
        return {"weight": self.weight, "sharpness": self.sharpness, "pool": self.pool}


def _counts() -> np.ndarray:
    return np.zeros((2, SLOTS_PER_DAY, N_ACTIONS))


@dataclass
class Evidence:
    """One person's answers counted per (day type, slot, action): accepted, and not accepted (ignored or
    rescheduled, both −1 rewards)."""

    accepted: np.ndarray = field(default_factory=_counts)
    rejected: np.ndarray = field(default_factory=_counts)

    def add(self, weekday: int, slot: int, action: Action, accepted: bool, count: int = 1) -> None:
        self.add_to_day_type(day_type(weekday), slot, action, accepted, count)

    def add_to_day_type(self, kind: int, slot: int, action: Action, accepted: bool, count: int = 1) -> None:
        """Count answers already grouped by kind of day (0 weekday, 1 weekend; see :func:`day_type`)."""
        if count < 0:
            raise ValueError("count must be >= 0")
        if kind not in (0, 1):
            raise ValueError(f"day type must be 0 (weekday) or 1 (weekend), got {kind}")
        target = self.accepted if accepted else self.rejected
        target[kind, int(slot), _ACTION_INDEX[action]] += count

    @classmethod
    def from_interactions(cls, interactions: Iterable[Interaction]) -> Evidence:
        evidence = cls()
        for item in interactions:
            evidence.add(
                item.state.day, int(item.state.slot), item.action, item.response is Response.ACCEPTED
            )
        return evidence

    @property
    def answers(self) -> int:
        return int(self.accepted.sum() + self.rejected.sum())

    def in_slot(self, weekday: int, slot: int, pool: float) -> tuple[np.ndarray, np.ndarray]:
        """``(accepted, rejected)`` per action in this slot: this day type's + ``pool`` × the other's."""
        weekdays, slots = np.array([weekday]), np.array([int(slot)])
        return (
            slot_counts(self.accepted[None], weekdays, slots, pool)[0],
            slot_counts(self.rejected[None], weekdays, slots, pool)[0],
        )


def evidence_weight(total_accepted: np.ndarray, total_rejected: np.ndarray, weight: float) -> np.ndarray:
    """``weight × (1 − r)``, ``r`` the Beta(1, 1) posterior mean of the person's acceptance (vectorised)."""
    rate = (1.0 + total_accepted) / (2.0 + total_accepted + total_rejected)
    return np.asarray(weight * (1.0 - rate))


def combine_batch(
    probs: np.ndarray,
    accepted: np.ndarray,
    rejected: np.ndarray,
    total_accepted: np.ndarray,
    total_rejected: np.ndarray,
    config: EvidenceConfig,
) -> np.ndarray:
    """The combined distribution for ``N`` decisions at once: ``probs, accepted, rejected (N, A)`` (this
    slot's counts), ``total_accepted, total_rejected (N,)`` (all the person's answers)."""
    probs = np.asarray(probs, dtype=np.float64)
    if not (probs > 0.0).any(axis=-1).all():
        raise ValueError("every row needs an action with positive probability")
    if not config.enabled:
        return np.asarray(probs / probs.sum(axis=-1, keepdims=True))
    mean = (1.0 + accepted) / (2.0 + accepted + rejected)
    w = evidence_weight(np.asarray(total_accepted), np.asarray(total_rejected), config.weight)[:, None]
    return _mix(probs, mean, w, config.sharpness)


def _mix(probs: np.ndarray, mean: np.ndarray, weight: np.ndarray | float, sharpness: float) -> np.ndarray:
    z = sharpness * np.log(np.maximum(probs, _TINY)) + weight * (np.log(mean) - np.log1p(-mean))
    # An action the model gives exactly 0 (an exclusion upstream) stays 0.
    z = np.where(probs > 0.0, z, -np.inf)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def reapply(probs: Iterable[float], logged: Mapping[str, Any] | None) -> np.ndarray:
    """The combination one logged decision used (its ``evidence`` column), applied to another distribution:
    what a candidate model or adapter would have been served there, for an off-policy gate. ``None`` (rows
    before the combination, or logged with it off) leaves the distribution as it is."""
    p = np.asarray(list(probs), dtype=np.float64)
    if p.shape != (N_ACTIONS,) or not (p > 0.0).any():
        raise ValueError(f"expected {N_ACTIONS} probabilities with one positive")
    if logged is None:
        return np.asarray(p / p.sum())
    accepted = np.asarray(logged["accepted"], dtype=np.float64)
    rejected = np.asarray(logged["rejected"], dtype=np.float64)
    mean = (1.0 + accepted) / (2.0 + accepted + rejected)
    mixed = _mix(p[None, :], mean[None, :], float(logged["effective_weight"]), float(logged["sharpness"]))
    return np.asarray(mixed[0])


@dataclass(frozen=True)
class Combined:
    """One decision's combined distribution and what went into it (logged with the recommendation)."""

    probabilities: np.ndarray
    weight: float
    accepted: tuple[float, ...]
    rejected: tuple[float, ...]
    answers: int

    def log(self, config: EvidenceConfig) -> dict[str, Any]:
        return {
            **config.as_dict(),
            "effective_weight": round(self.weight, 6),
            "answers": self.answers,
            "accepted": [round(x, 3) for x in self.accepted],
            "rejected": [round(x, 3) for x in self.rejected],
        }


def combine(
    probs: Iterable[float], evidence: Evidence, weekday: int, slot: int, config: EvidenceConfig
) -> Combined:
    """The combined distribution for one decision of one person."""
    p = np.asarray(list(probs), dtype=np.float64)[None, :]
    if p.shape != (1, N_ACTIONS):
        raise ValueError(f"expected {N_ACTIONS} probabilities, got {p.shape[1]}")
    accepted, rejected = evidence.in_slot(weekday, slot, config.pool)
    total_a, total_r = np.array([evidence.accepted.sum()]), np.array([evidence.rejected.sum()])
    out = combine_batch(p, accepted[None, :], rejected[None, :], total_a, total_r, config)[0]
    weight = float(evidence_weight(total_a, total_r, config.weight)[0]) if config.enabled else 0.0
    return Combined(
        out, weight, tuple(float(x) for x in accepted), tuple(float(x) for x in rejected), evidence.answers
    )

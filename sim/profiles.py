"""Hidden user profiles: a continuous trait space, the three archetypes as points in it, and batched sampling.

A profile is 6 traits plus reward weights over the 5 meters (ACTIONS/METERS order from :mod:`domain`):

=================  ===========================================================  ==============  ==============
trait              meaning (effect in :mod:`sim.dynamics`)                       in-distribution out-of-distr.
=================  ===========================================================  ==============  ==============
social_cost        socialising drains vitality: SOCIALIZE vitality anomaly        [-0.5, 1.0]     [-1.0, 1.5]
                   = -0.10 * social_cost (introvert 1.0 -> -0.10)
chronotype         cognitive peak position: 1 = morning lark, 0 = night owl      [0.1, 0.9]      [-0.2, 1.2]
work_vitality      work-vitality coupling: DEEP_WORK vitality anomaly            [-0.5, 1.0]     [-1.0, 1.5]
                   = +0.06 * work_vitality (workaholic 1.0 -> +0.06)
leisure_guilt      leisure (ME_TIME, BINGE_WATCH) costs serenity                 [0.0, 0.9]      [0.0, 1.3]
stress_tolerance   scales every serenity loss by (1.6 - 1.2 * tolerance)          [0.2, 0.9]      [0.0, 1.0]
solo_recharge      alone time (ME_TIME, MEDITATE) restores serenity/vitality     [0.0, 0.9]      [-0.4, 1.3]
=================  ===========================================================  ==============  ==============

Reward weights are a point on the 5-simplex: Dirichlet(2) in distribution, Dirichlet(0.5) (peakier) out of it.
An out-of-distribution profile has at least two traits drawn from outside their in-distribution interval.

Everything is batched: :class:`ProfileBatch` holds ``traits (N, 6)`` and ``weights (N, 5)`` arrays, so
dynamics, the response model and the policies are vectorised over users (and over particles).

The held-out families (``heldout-sparse``, ``heldout-rules``; :mod:`sim.heldout`) are other generators: their
batches carry ``family`` and per-action ``params`` that replace the utility model in :mod:`sim.response`,
and neutral traits that only drive the meter dynamics.

Public API: ``TRAITS``, ``ARCHETYPE_NAMES``, ``ARCHETYPES``, ``ProfileBatch``, ``sample_profiles(rng, n,
mode)`` with ``mode`` in ``PROFILE_MODES = ("archetypes", "continuous", "ood", "heldout-sparse",
"heldout-rules")`` (``TRAINING_MODES`` are the first three), ``archetype_batch()``,
``neutral_profile()`` and ``ProfileBatch.belief_vector()`` (the upstream [social, morning, work] summary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from domain import N_METERS
from sim.heldout import FAMILIES, HELDOUT_MODES
from sim.procedural import PROCEDURAL_FAMILIES, PROCEDURAL_MODES

TRAITS: tuple[str, ...] = (
    "social_cost",
    "chronotype",
    "work_vitality",
    "leisure_guilt",
    "stress_tolerance",
    "solo_recharge",
)
N_TRAITS = len(TRAITS)
TRAIT_INDEX: dict[str, int] = {name: i for i, name in enumerate(TRAITS)}

ID_RANGES: np.ndarray = np.array(
    [[-0.5, 1.0], [0.1, 0.9], [-0.5, 1.0], [0.0, 0.9], [0.2, 0.9], [0.0, 0.9]], dtype=np.float64
)
OOD_RANGES: np.ndarray = np.array(
    [[-1.0, 1.5], [-0.2, 1.2], [-1.0, 1.5], [0.0, 1.3], [0.0, 1.0], [-0.4, 1.3]], dtype=np.float64
)
ID_DIRICHLET_ALPHA = 2.0
OOD_DIRICHLET_ALPHA = 0.5
OOD_MIN_TRAITS_OUTSIDE = 2

ProfileMode = Literal[
    "archetypes", "continuous", "ood", "proc-table", "proc-state", "heldout-sparse", "heldout-rules"
]
# The modes pretraining draws its users from (policy.teacher.ProfileMix, the DPT recipe's mix, which adds the
# procedural generators of sim.procedural); the held-out ones it never sees.
TRAINING_MODES: tuple[str, ...] = ("archetypes", "continuous", "ood", *PROCEDURAL_MODES)
PROFILE_MODES: tuple[str, ...] = (*TRAINING_MODES, *HELDOUT_MODES)

ARCHETYPE_NAMES: tuple[str, ...] = ("introvert_morning", "extrovert_night_owl", "workaholic_stoic")

# Traits in TRAITS order; weights in METERS order (vitality, cognition, progress, serenity, connection).
ARCHETYPES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "introvert_morning": ((1.0, 0.9, 0.0, 0.3, 0.5, 0.9), (0.20, 0.20, 0.25, 0.25, 0.10)),
    "extrovert_night_owl": ((-0.4, 0.1, -0.3, 0.1, 0.6, 0.1), (0.15, 0.10, 0.20, 0.15, 0.40)),
    "workaholic_stoic": ((0.0, 0.5, 1.0, 0.9, 0.9, 0.2), (0.10, 0.10, 0.70, 0.05, 0.05)),
}
NEUTRAL_TRAITS: tuple[float, ...] = (0.0, 0.5, 0.0, 0.0, 0.5, 0.0)


@dataclass(frozen=True)
class ProfileBatch:
    """N hidden profiles as arrays: ``traits (N, 6)`` in TRAITS order, ``weights (N, 5)`` in METERS order.

    ``archetype`` is ``(N,)`` int: the index into ARCHETYPE_NAMES for archetype profiles, -1 otherwise.
    ``family`` names a held-out generator (:mod:`sim.heldout`) whose ``params (N, 10, P)`` decide the
    responses instead of the utility model; ``None`` for the simulator's own people.
    """

    traits: np.ndarray
    weights: np.ndarray
    archetype: np.ndarray
    family: str | None = None
    params: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.traits.ndim != 2 or self.traits.shape[1] != N_TRAITS:
            raise ValueError(f"traits must be (N, {N_TRAITS}), got {self.traits.shape}")
        if self.weights.shape != (self.traits.shape[0], N_METERS):
            raise ValueError(f"weights must be (N, {N_METERS}), got {self.weights.shape}")
        if self.archetype.shape != (self.traits.shape[0],):
            raise ValueError("archetype must be (N,)")
        if (self.family is None) != (self.params is None):
            raise ValueError("family and params go together")
        if self.params is not None and self.params.shape[0] != self.traits.shape[0]:
            raise ValueError("params must have one row per profile")

    def __len__(self) -> int:
        return int(self.traits.shape[0])

    def trait(self, name: str) -> np.ndarray:
        return self.traits[:, TRAIT_INDEX[name]]

    def take(self, index: np.ndarray | slice) -> ProfileBatch:
        params = None if self.params is None else self.params[index]
        return ProfileBatch(
            self.traits[index], self.weights[index], self.archetype[index], self.family, params
        )

    def repeat(self, times: int) -> ProfileBatch:
        """Each profile repeated ``times`` times consecutively (profile-major): row i*times+j is profile i."""
        return ProfileBatch(
            np.repeat(self.traits, times, axis=0),
            np.repeat(self.weights, times, axis=0),
            np.repeat(self.archetype, times, axis=0),
            self.family,
            None if self.params is None else np.repeat(self.params, times, axis=0),
        )

    @staticmethod
    def concat(batches: list[ProfileBatch]) -> ProfileBatch:
        families = {b.family for b in batches}
        if len(families) > 1:
            raise ValueError(f"cannot mix profile families {sorted(map(str, families))} in one batch")
        family = families.pop() if families else None
        return ProfileBatch(
            np.concatenate([b.traits for b in batches]),
            np.concatenate([b.weights for b in batches]),
            np.concatenate([b.archetype for b in batches]),
            family,
            None if family is None else np.concatenate([b.params for b in batches if b.params is not None]),
        )

    def belief_vector(self) -> np.ndarray:
        """(N, 3) in [0, 1]: the upstream summary [social, morning, work] (0 hates / night owl / avoids
        work)."""
        social = 1.0 - (self.trait("social_cost") + 0.5) / 1.5
        morning = (self.trait("chronotype") - 0.1) / 0.8
        work = 0.5 * (self.trait("work_vitality") + 0.5) / 1.5 + 0.5 * np.minimum(
            self.weights[:, 2] / 0.7, 1.0
        )
        return np.clip(np.stack([social, morning, work], axis=1), 0.0, 1.0)

    def nearest_archetype(self) -> np.ndarray:
        """(N,) index of the closest archetype (Euclidean over traits and weights); exact for archetypes."""
        ref = archetype_batch()
        a = np.concatenate([self.traits, self.weights], axis=1)
        b = np.concatenate([ref.traits, ref.weights], axis=1)
        dist = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        nearest = dist.argmin(axis=1)
        return np.where(self.archetype >= 0, self.archetype, nearest)


def archetype_batch(names: tuple[str, ...] = ARCHETYPE_NAMES) -> ProfileBatch:
    """The archetypes (in ARCHETYPE_NAMES order by default) as a batch."""
    traits = np.array([ARCHETYPES[n][0] for n in names], dtype=np.float64)
    weights = np.array([ARCHETYPES[n][1] for n in names], dtype=np.float64)
    return ProfileBatch(traits, weights, np.array([ARCHETYPE_NAMES.index(n) for n in names], dtype=np.int64))


def neutral_profile(n: int = 1) -> ProfileBatch:
    """The reference profile the tells ("anomalies") are measured against: no modifiers, mid chronotype."""
    traits = np.tile(np.array(NEUTRAL_TRAITS, dtype=np.float64), (n, 1))
    weights = np.full((n, N_METERS), 1.0 / N_METERS)
    return ProfileBatch(traits, weights, np.full(n, -1, dtype=np.int64))


def _uniform(rng: np.random.Generator, ranges: np.ndarray, n: int) -> np.ndarray:
    return rng.uniform(ranges[:, 0], ranges[:, 1], size=(n, len(ranges)))


def sample_profiles(rng: np.random.Generator, n: int, mode: str) -> ProfileBatch:
    """Draw ``n`` hidden profiles.

    ``archetypes``: each user is one of the 3 archetypes, uniformly. ``continuous``: traits uniform on the
    in-distribution box, weights Dirichlet(2). ``ood``: traits uniform on the wider box with at least two
    traits outside the in-distribution interval, weights Dirichlet(0.5).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if mode == "archetypes":
        idx = rng.integers(0, len(ARCHETYPE_NAMES), size=n)
        ref = archetype_batch()
        return ProfileBatch(ref.traits[idx].copy(), ref.weights[idx].copy(), idx.astype(np.int64))
    if mode == "continuous":
        traits = _uniform(rng, ID_RANGES, n)
        weights = rng.dirichlet(np.full(N_METERS, ID_DIRICHLET_ALPHA), size=n)
        return ProfileBatch(traits, weights, np.full(n, -1, dtype=np.int64))
    if mode == "ood":
        traits = _uniform(rng, OOD_RANGES, n)
        # Force some traits into the shell between the two boxes, choosing the side by its width.
        order = rng.random((n, N_TRAITS)).argsort(axis=1)[:, :OOD_MIN_TRAITS_OUTSIDE]
        low_w = ID_RANGES[:, 0] - OOD_RANGES[:, 0]
        high_w = OOD_RANGES[:, 1] - ID_RANGES[:, 1]
        for col in range(OOD_MIN_TRAITS_OUTSIDE):
            j = order[:, col]
            u = rng.random(n) * (low_w[j] + high_w[j])
            low_side = u < low_w[j]
            value = np.where(low_side, OOD_RANGES[j, 0] + u, ID_RANGES[j, 1] + (u - low_w[j]))
            traits[np.arange(n), j] = value
        weights = rng.dirichlet(np.full(N_METERS, OOD_DIRICHLET_ALPHA), size=n)
        # Dirichlet(0.5) can underflow to exact zeros; keep every meter minimally valued.
        weights = (weights + 1e-3) / (1.0 + N_METERS * 1e-3)
        return ProfileBatch(traits, weights, np.full(n, -1, dtype=np.int64))
    family = FAMILIES.get(mode) or PROCEDURAL_FAMILIES.get(mode)
    if family is not None:
        body = neutral_profile(n)
        return ProfileBatch(body.traits, body.weights, body.archetype, mode, family.sample(rng, n))
    raise ValueError(f"unknown profile mode {mode!r}; expected one of {PROFILE_MODES}")

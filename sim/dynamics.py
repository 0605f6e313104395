"""Life dynamics: how one action in one slot changes a person's 5 meters, vectorised over users.

Order of application for action ``a`` in slot ``s`` with meters ``x`` and profile traits (see
:mod:`sim.profiles`):

1. ``BASE_EFFECTS[a]`` (signs from the upstream RhythmEnv; the DEEP_WORK row V -0.12, C -0.10, P +0.18, S
   -0.05 is the one upstream number we know, the rest are ours);
2. gains (positive deltas) are multiplied by the time-of-day multiplier ``TIME_OF_DAY[s, a]`` and, except
   vitality gains, by the vitality factor ``0.6 + 0.8 * vitality`` (a tired person gets less out of anything);
3. the chronotype: cognitive actions (DEEP_WORK, ADMIN_WORK, LEARN) get their progress gain multiplied by the
   performance ``perf = clip(1.3 - 0.25 * |s - 3 * (1 - chronotype)|, 0.5, 1.3)`` and their cognition cost by
   ``2 - perf`` (cheaper at the person's peak);
4. profile modifiers (the "tells"): SOCIALIZE V -0.10*social_cost, S -0.03*social_cost; FAMILY_TIME
   V -0.03*social_cost; DEEP_WORK V +0.06*work_vitality, S +0.03*work_vitality; ADMIN_WORK / LEARN V
   +0.03 / +0.02*work_vitality; ME_TIME S -0.07*leisure_guilt, BINGE_WATCH S -0.09*leisure_guilt; ME_TIME
   S +0.06*solo_recharge, V +0.03*solo_recharge; MEDITATE S +0.04*solo_recharge;
5. every serenity loss is scaled by ``1.6 - 1.2 * stress_tolerance``.

The "anomaly" of a meter (upstream v1.1) is the action's delta minus the delta of :func:`sim.profiles.
neutral_profile` in the same slot and meters: :func:`anomaly`.

Each slot also costs ``PASSIVE_DECAY`` (plus a serenity spiral below 0.3 for stress-intolerant people), and
with probability ``EVENT_PROB`` a random event (``EVENTS``) hits. Meters are clamped to [0, 1] after every
step. Ignored or rescheduled recommendations leave only passive decay and events (the person did something
neutral).
"""

from __future__ import annotations

import numpy as np

from domain import N_ACTIONS, N_METERS, SLOTS_PER_DAY, Action
from sim.profiles import TRAIT_INDEX, ProfileBatch

V, C, P, S, K = range(5)  # meter columns: vitality, cognition, progress, serenity, connection

# Rows in ACTIONS order; columns in METERS order.
BASE_EFFECTS: np.ndarray = np.array(
    [
        [-0.12, -0.10, 0.18, -0.05, 0.00],  # DEEP_WORK
        [-0.05, -0.05, 0.08, -0.03, 0.00],  # ADMIN_WORK
        [-0.06, -0.04, 0.11, 0.03, 0.00],  # LEARN
        [0.22, 0.14, 0.00, 0.03, 0.00],  # SLEEP
        [0.10, 0.03, 0.00, 0.07, 0.00],  # EXERCISE
        [0.02, 0.07, 0.00, 0.13, 0.00],  # MEDITATE
        [-0.02, 0.00, 0.00, 0.06, 0.16],  # FAMILY_TIME
        [-0.04, 0.00, 0.00, 0.02, 0.13],  # SOCIALIZE
        [0.05, 0.02, 0.00, 0.08, -0.02],  # ME_TIME
        [0.02, -0.06, 0.00, 0.05, -0.01],  # BINGE_WATCH
    ],
    dtype=np.float64,
)

# (slot, action): Morning, Afternoon, Evening, Night rows.
TIME_OF_DAY: np.ndarray = np.array(
    [
        # DW    ADM   LRN   SLP   EXE   MED   FAM   SOC   ME    BINGE
        [1.00, 1.00, 1.00, 0.35, 1.15, 1.10, 0.60, 0.50, 0.80, 0.60],  # Morning
        [1.00, 1.05, 1.00, 0.45, 1.00, 0.90, 0.85, 0.90, 0.90, 0.80],  # Afternoon
        [0.85, 0.90, 0.95, 0.70, 0.90, 1.00, 1.25, 1.20, 1.10, 1.10],  # Evening
        [0.70, 0.70, 0.80, 1.20, 0.50, 1.00, 0.70, 1.00, 1.00, 1.10],  # Night
    ],
    dtype=np.float64,
)

COGNITIVE_ACTIONS: tuple[int, ...] = (Action.DEEP_WORK.index, Action.ADMIN_WORK.index, Action.LEARN.index)
PASSIVE_DECAY: np.ndarray = np.array([-0.040, -0.035, -0.040, -0.030, -0.035], dtype=np.float64)
SPIRAL_THRESHOLD = 0.3
SPIRAL_RATE = 0.03

EVENT_PROB = 0.06
EVENT_NAMES: tuple[str, ...] = (
    "rough_night",
    "urgent_deadline",
    "friend_visit",
    "minor_illness",
    "good_news",
)
EVENTS: np.ndarray = np.array(
    [
        [-0.10, -0.05, 0.00, 0.00, 0.00],
        [0.00, 0.00, -0.04, -0.08, 0.00],
        [0.00, 0.00, 0.00, 0.02, 0.08],
        [-0.12, -0.04, 0.00, 0.00, 0.00],
        [0.02, 0.00, 0.00, 0.06, 0.00],
    ],
    dtype=np.float64,
)

_A = {a: a.index for a in Action}

# The modifiers are linear in the traits: MODIFIERS[trait] is that trait's (10, 5) per-unit delta.
MODIFIERS: np.ndarray = np.zeros((len(TRAIT_INDEX), N_ACTIONS, N_METERS))
for _trait, _action, _meter, _coef in (
    ("social_cost", Action.SOCIALIZE, V, -0.10),
    ("social_cost", Action.SOCIALIZE, S, -0.03),
    ("social_cost", Action.FAMILY_TIME, V, -0.03),
    ("work_vitality", Action.DEEP_WORK, V, 0.06),
    ("work_vitality", Action.DEEP_WORK, S, 0.03),
    ("work_vitality", Action.ADMIN_WORK, V, 0.03),
    ("work_vitality", Action.LEARN, V, 0.02),
    ("leisure_guilt", Action.ME_TIME, S, -0.07),
    ("leisure_guilt", Action.BINGE_WATCH, S, -0.09),
    ("solo_recharge", Action.ME_TIME, S, 0.06),
    ("solo_recharge", Action.ME_TIME, V, 0.03),
    ("solo_recharge", Action.MEDITATE, S, 0.04),
):
    MODIFIERS[TRAIT_INDEX[_trait], _A[_action], _meter] = _coef
_MODIFIERS_FLAT = MODIFIERS.reshape(len(TRAIT_INDEX), N_ACTIONS * N_METERS)

# Gains scaled by time of day, per slot: (4, 10, 5); costs are time-independent.
_TOD_GAINS: np.ndarray = np.maximum(BASE_EFFECTS, 0.0)[None] * TIME_OF_DAY[:, :, None]
_COSTS: np.ndarray = np.minimum(BASE_EFFECTS, 0.0)
_COG = slice(min(COGNITIVE_ACTIONS), max(COGNITIVE_ACTIONS) + 1)
assert list(range(N_ACTIONS))[_COG] == sorted(COGNITIVE_ACTIONS)


def chronotype_performance(chronotype: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Cognitive performance multiplier, peaking (1.3) at slot ``3 * (1 - chronotype)``; broadcasts."""
    peak = (SLOTS_PER_DAY - 1) * (1.0 - chronotype)
    return np.asarray(np.clip(1.3 - 0.25 * np.abs(slot - peak), 0.5, 1.3))


def deltas_in_slots(profiles: ProfileBatch, meters: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Expected (event-free, unclamped, before decay) deltas of every action: ``(N, S, 10, 5)``.

    ``meters`` is ``(N, 5)``; ``slots`` is ``(N, S)`` ints in 0..3 (e.g. all 4 slots of the day at once).
    """
    meters = np.asarray(meters, dtype=np.float64)
    slots = np.asarray(slots, dtype=np.int64)
    n = meters.shape[0]
    scale = np.empty((n, 1, 1, N_METERS))
    scale[:, 0, 0, :] = (0.6 + 0.8 * meters[:, V])[:, None]
    scale[:, 0, 0, V] = 1.0
    gains = _TOD_GAINS[slots] * scale  # (N, S, 10, 5)
    perf = chronotype_performance(profiles.traits[:, TRAIT_INDEX["chronotype"], None], slots)  # (N, S)
    gains[:, :, _COG, P] *= perf[:, :, None]
    d = gains + _COSTS
    d[:, :, _COG, C] += _COSTS[_COG, C] * (1.0 - perf)[:, :, None]
    d += (profiles.traits @ _MODIFIERS_FLAT).reshape(n, 1, N_ACTIONS, N_METERS)
    serenity = d[:, :, :, S]
    factor = (1.6 - 1.2 * profiles.traits[:, TRAIT_INDEX["stress_tolerance"]])[:, None, None]
    d[:, :, :, S] = np.where(serenity < 0.0, serenity * factor, serenity)
    return np.asarray(d)


def all_action_deltas(profiles: ProfileBatch, meters: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Expected (event-free, unclamped, before decay) meter deltas of every action: ``(N, 10, 5)``.

    ``meters`` is ``(N, 5)``, ``slot`` is ``(N,)`` ints in 0..3.
    """
    return deltas_in_slots(profiles, meters, np.asarray(slot, dtype=np.int64)[:, None])[:, 0]


def action_deltas(
    profiles: ProfileBatch, meters: np.ndarray, slot: np.ndarray, actions: np.ndarray
) -> np.ndarray:
    """Expected deltas ``(N, 5)`` of one chosen action per user."""
    all_d = all_action_deltas(profiles, meters, slot)
    return all_d[np.arange(all_d.shape[0]), np.asarray(actions, dtype=np.int64)]


def anomaly(profiles: ProfileBatch, meters: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """``(N, 10, 5)``: each action's delta minus what the neutral profile gets in the same slot and meters."""
    from sim.profiles import neutral_profile

    neutral = neutral_profile(len(profiles))
    return np.asarray(all_action_deltas(profiles, meters, slot) - all_action_deltas(neutral, meters, slot))


def passive_decay(profiles: ProfileBatch, meters: np.ndarray) -> np.ndarray:
    """``(N, 5)`` per-slot drift: baseline decay plus a serenity spiral below 0.3 for the
    stress-intolerant."""
    tol = profiles.traits[:, TRAIT_INDEX["stress_tolerance"]]
    decay = np.broadcast_to(PASSIVE_DECAY, meters.shape).copy()
    spiral = meters[:, S] < SPIRAL_THRESHOLD
    decay[:, S] -= np.where(spiral, SPIRAL_RATE * np.clip(1.0 - tol, 0.0, None), 0.0)
    return decay


def sample_events(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw this slot's random events: ``(event index or -1 (N,), meter deltas (N, 5))``."""
    hit = rng.random(n) < EVENT_PROB
    kind = rng.integers(0, len(EVENT_NAMES), size=n)
    event = np.where(hit, kind, -1)
    deltas = np.where(hit[:, None], EVENTS[kind], 0.0)
    return event, deltas


def apply_step(
    profiles: ProfileBatch,
    meters: np.ndarray,
    slot: np.ndarray,
    actions: np.ndarray,
    performed: np.ndarray,
    event_deltas: np.ndarray | None = None,
) -> np.ndarray:
    """Next meters ``(N, 5)`` in [0, 1]: the action's effect where ``performed`` (accepted), then decay,
    events."""
    delta = action_deltas(profiles, meters, slot, actions) * np.asarray(performed, dtype=bool)[:, None]
    nxt = meters + delta + passive_decay(profiles, meters)
    if event_deltas is not None:
        nxt = nxt + event_deltas
    return np.asarray(np.clip(nxt, 0.0, 1.0))

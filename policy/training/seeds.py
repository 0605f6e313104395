"""Which rollout seeds a pretraining run uses: one formula, shared by the data generator and the benchmarks.

:func:`policy.training.data.generate_sequences` cuts the users into chunks of ``CHUNK_USERS`` per entry of the
week mix; chunk ``part`` of mix entry ``mix_index`` is rolled out with :func:`chunk_seed`. The simulator seeds
its environment from that number (``sim.rollout``), so a benchmark run with the same ``--seed`` replays a
training episode's start meters and events; ``rhythm bench`` refuses those seeds for the model
(:mod:`sim.seeds`). No torch here: the benchmark asks for the seeds before it loads anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

CHUNK_USERS = 500


def chunk_seed(seed: int, mix_index: int, part: int) -> int:
    return seed * 10_007 + mix_index * 1_000 + part


def chunk_sizes(users: int, share: float) -> list[int]:
    """Users per chunk for one week-mix entry."""
    remaining = round(users * share)
    return [min(CHUNK_USERS, remaining - i * CHUNK_USERS) for i in range(math.ceil(remaining / CHUNK_USERS))]


def rollout_seeds(seed: int, users: int, week_mix: Sequence[tuple[Any, ...]]) -> frozenset[int]:
    """Every rollout seed of a pretraining run with this seed, user count and mix (``(weeks, share)`` or
    ``(weeks, share, mode)`` per entry: :func:`policy.training.config.chunk_plan`)."""
    return frozenset(
        chunk_seed(seed, mix_index, part)
        for mix_index, entry in enumerate(week_mix)
        for part in range(len(chunk_sizes(users, entry[1])))
    )

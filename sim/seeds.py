"""Seeds a policy was trained on, so that a benchmark does not evaluate it on them.

A benchmark run with ``--seed S`` draws its environment (start meters, events, response coins) from
``SeedSequence(S)``, exactly as a training rollout with seed ``S`` does. A model evaluated on its own training
seeds is scored partly on histories it has seen. The simulator knows nothing of training, so, like the policy
registry, this one is filled by its callers: ``policy`` reserves, for its ``model`` policy, the rollout seeds
of the run that produced the weights (:func:`policy.training.seeds.rollout_seeds`). ``rhythm bench …``
refuses an overlapping seed unless asked not to, and then says so in its output.

Evaluation seeds: pick them from ``EVALUATION_SEEDS`` (100–999); the shipped model's training used 0–4,
1000–1002, 2000, 3000–3001 (seed 0, 5,000 users), which that range avoids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

SeedProvider = Callable[[str | None], frozenset[int]]

EVALUATION_SEEDS = range(100, 1000)

_RESERVED: dict[str, SeedProvider] = {}


def reserve_seeds(policy_name: str, provider: SeedProvider) -> None:
    """``provider(arg)`` returns the seeds that policy ``policy_name[:arg]`` was trained on (called only
    when a benchmark asks, so it may read files or import heavy modules)."""
    _RESERVED[policy_name] = provider


def trained_seeds(spec: str) -> frozenset[int]:
    """The seeds the policy ``spec`` (``NAME`` or ``NAME:ARG``) was trained on; empty when none are reserved
    (a wrapper such as ``blind:SPEC`` reserves those of the policy it wraps)."""
    name, sep, arg = spec.partition(":")
    provider = _RESERVED.get(name)
    return frozenset() if provider is None else provider(arg if sep else None)


def training_seed_overlap(policies: Iterable[str], seeds: Iterable[int]) -> dict[str, list[int]]:
    """``{policy spec: sorted seeds among seeds that it was trained on}`` for the specs that overlap."""
    wanted = set(seeds)
    out: dict[str, list[int]] = {}
    for spec in policies:
        hit = sorted(wanted & trained_seeds(spec))
        if hit:
            out[spec] = hit
    return out

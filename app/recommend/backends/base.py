"""The one interface every policy backend implements, and the checks every answer must pass.

A backend receives the prompt the service rendered once with :func:`policy.prompt.render_prompt` (no backend
builds its own) together with the structured history it was rendered from, and returns a probability
distribution over the 10 actions in ``domain.ACTIONS`` order. Exclusions, temperature and sampling are
applied by the service afterwards, identically for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain import N_ACTIONS, Interaction, SlotState

Distribution = npt.NDArray[np.float64]

# Model servers answer in float32; a distribution off by more than this from 1 was not produced by a softmax.
SUM_TOLERANCE = 1e-3


class BackendError(Exception):
    """The backend could not answer (unreachable, timed out, malformed reply). The service falls back."""


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """What a backend decides from: the rendered prompt, plus the history and state it was rendered from."""

    prompt: str
    history: Sequence[Interaction]
    current: SlotState
    # Name of the user's deployed LoRA adapter; backends that cannot serve adapters ignore it.
    adapter: str | None = None
    # Its peft folder, for backends that load adapters themselves (the local one).
    adapter_uri: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """A backend's answer: all 10 probabilities and which model (and adapter) produced them."""

    probabilities: Distribution
    backend: str
    model: str
    adapter: str | None = None
    # Posterior over archetypes, for policies that keep one (the exact-Bayes fallback).
    belief: dict[str, float] | None = None


class PolicyBackend(Protocol):
    """A policy that maps a :class:`PolicyInput` to a distribution over the 10 actions."""

    name: str
    # True when the backend serves per-user LoRA adapters (then the shorter adapter history window applies).
    supports_adapters: bool

    async def decide(self, inp: PolicyInput) -> PolicyDecision: ...

    async def ready(self) -> bool: ...

    async def aclose(self) -> None: ...


def checked_distribution(values: Sequence[float] | Distribution) -> Distribution:
    """Return ``values`` as a float64 (10,) array, or raise :class:`BackendError` if it is not a
    distribution."""
    probs = np.asarray(values, dtype=np.float64)
    if probs.shape != (N_ACTIONS,):
        raise BackendError(f"expected {N_ACTIONS} probabilities, got shape {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0.0):
        raise BackendError("probabilities must be finite and non-negative")
    total = float(probs.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise BackendError(f"probabilities sum to {total}, not 1")
    return probs / total

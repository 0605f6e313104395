"""The ``fallback`` backend: exact Bayes over the simulator's archetypes. Pure numpy, always available."""

from __future__ import annotations

import asyncio

from app.recommend.backends.base import PolicyDecision, PolicyInput, checked_distribution
from sim.policies.bayes import exact_bayes_distribution

MODEL_NAME = "exact-bayes"


class FallbackBackend:
    """Answers when the primary backend cannot; reads the structured history, not the prompt text.

    One call costs about 3 ms for a full 30-day history (numpy over every interaction and archetype), which is
    too long to hold the event loop, so it runs in a worker thread.
    """

    name = "fallback"
    supports_adapters = False

    async def decide(self, inp: PolicyInput) -> PolicyDecision:
        probs, belief = await asyncio.to_thread(exact_bayes_distribution, inp.history, inp.current)
        return PolicyDecision(
            probabilities=checked_distribution(probs), backend=self.name, model=MODEL_NAME, belief=belief
        )

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

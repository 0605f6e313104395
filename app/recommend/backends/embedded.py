"""The ``local`` backend (``RHYTHM_POLICY_BACKEND=local``): the embedded model of :mod:`policy.local`.

Called ``embedded`` rather than ``local`` so that the file name does not read as "local time" or as a second
local model next to :mod:`policy.local`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from app.recommend.backends.base import BackendError, PolicyDecision, PolicyInput, checked_distribution

if TYPE_CHECKING:
    from policy.local import LocalPolicyModel


class EmbeddedBackend:
    """Runs :class:`policy.local.LocalPolicyModel` on a small dedicated thread pool.

    A forward pass is CPU-bound (torch releases the GIL), so it never runs on the event loop. Requests queue
    for the pool's worker, and torch runs each pass on one intra-op thread: the model is tiny, so splitting a
    pass across threads gains little while OpenMP's spinning threads starve the event loop and the database
    driver (see :meth:`load`).
    """

    name = "local"
    supports_adapters = False

    def __init__(self, model: LocalPolicyModel, *, workers: int = 1) -> None:
        self.model = model
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rhythm-policy")

    @classmethod
    async def load(
        cls, model_dir: Path | None = None, *, workers: int = 1, torch_threads: int = 1
    ) -> EmbeddedBackend:
        """Load a model folder (``None``: the weights shipped in the ``policy`` package) off the event loop.

        ``torch_threads`` sets torch's intra-op threads for the whole process (torch has no per-thread knob).
        Measured with ``rhythm bench api`` on 2 shared cores: with torch's default of 2 threads the server
        burnt 100–400 ms of CPU per recommendation and served 2–7 req/s; with 1 thread (``OMP_NUM_THREADS=1``)
        10–12 ms and 47 req/s at 1 client, 71–82 req/s at 8.
        """
        # torch and transformers take ~20 s to import: only a process that builds this backend pays for them,
        # so `rhythm --help`, the workers and an app on another backend start in about a second.
        import torch

        from policy.local import LocalPolicyModel

        torch.set_num_threads(torch_threads)
        model = await asyncio.to_thread(LocalPolicyModel.load, model_dir)
        return cls(model, workers=workers)

    async def decide(self, inp: PolicyInput) -> PolicyDecision:
        loop = asyncio.get_running_loop()
        try:
            probs = await loop.run_in_executor(self._pool, self.model.distribution, inp.prompt)
        except ValueError as exc:  # e.g. a prompt longer than the model's context
            raise BackendError(str(exc)) from exc
        return PolicyDecision(
            probabilities=checked_distribution(probs), backend=self.name, model=self.model.model_name
        )

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

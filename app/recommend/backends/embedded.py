"""The ``local`` backend (``RHYTHM_POLICY_BACKEND=local``): the embedded model of :mod:`policy.local`.

Called ``embedded`` rather than ``local`` so that the file name does not read as "local time" or as a second
local model next to :mod:`policy.local`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from app.recommend.backends.base import (
    BackendError,
    Distribution,
    PolicyDecision,
    PolicyInput,
    checked_distribution,
)
from policy.prompt import RENDERER_VERSION

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    from policy.local import LocalPolicyModel


class ModelVersionError(RuntimeError):
    """The model folder cannot read the prompts this service renders: a deployment error, raised at start."""


def check_renderer_version(model_version: int, model_dir: Path | None) -> None:
    """Refuse a model whose tokenizer predates :data:`policy.prompt.RENDERER_VERSION`: it would read a missing
    meter's word as [UNK]. A newer model reads older text (version 2 equals 1 where no meter is missing)."""
    if model_version < RENDERER_VERSION:
        raise ModelVersionError(
            f"the model at {model_dir or 'the shipped folder'} reads prompt text version {model_version}; "
            f"this service renders version {RENDERER_VERSION} (docs/prompt-format.md). Use a model "
            f"trained with --renderer-version {RENDERER_VERSION}."
        )


class EmbeddedBackend:
    """Runs :class:`policy.local.LocalPolicyModel` on a small dedicated thread pool.

    A forward pass is CPU-bound (torch releases the GIL), so it never runs on the event loop. Requests queue
    for the pool's worker, and torch runs each pass on one intra-op thread: the model is tiny, so splitting a
    pass across threads gains little while OpenMP's spinning threads starve the event loop and the database
    driver (see :meth:`load`).
    """

    name = "local"
    # Per-user LoRA adapters too: each is merged into a copy of the base weights (peft), kept in a bounded
    # LRU with its own prefix cache, so ``make run`` serves Phase 3 without a GPU or vLLM.
    supports_adapters = True

    def __init__(
        self,
        model: LocalPolicyModel,
        *,
        workers: int = 1,
        model_dir: Path | None = None,
        adapter_cache_size: int = 8,
        adapter_cache_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.model = model
        self.model_dir = model_dir
        self.adapter_cache_size = adapter_cache_size
        self.adapter_cache_bytes = adapter_cache_bytes
        self._adapters: OrderedDict[str, LocalPolicyModel] = OrderedDict()
        self._adapters_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rhythm-policy")

    @classmethod
    async def load(
        cls,
        model_dir: Path | None = None,
        *,
        workers: int = 1,
        torch_threads: int = 1,
        adapter_cache_size: int = 8,
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
        check_renderer_version(model.renderer_version, model_dir)
        return cls(model, workers=workers, model_dir=model_dir, adapter_cache_size=adapter_cache_size)

    def adapter_model(self, name: str, uri: str) -> LocalPolicyModel:
        """The base with adapter ``name`` merged in, from the LRU or loaded from ``uri`` (evicting the least
        recently used one beyond ``adapter_cache_size``). Runs on the pool's thread."""
        with self._adapters_lock:
            cached = self._adapters.get(name)
            if cached is not None:
                self._adapters.move_to_end(name)
                return cached
        from policy.finetune import load_adapter_model
        from policy.local import LocalPolicyModel

        # A plain path or a file:// URI (the adapter row's ``uri``).
        merged = load_adapter_model(Path(uri.removeprefix("file://")), self.model_dir)
        model = LocalPolicyModel(
            merged,
            self.model.tokenizer,
            model_name=self.model.model_name,
            cache_bytes=self.adapter_cache_bytes,
        )
        with self._adapters_lock:
            self._adapters[name] = model
            self._adapters.move_to_end(name)
            while len(self._adapters) > self.adapter_cache_size:
                self._adapters.popitem(last=False)
        return model

    def _distribution(self, inp: PolicyInput) -> tuple[Distribution, str | None]:
        if inp.adapter is not None and inp.adapter_uri is not None:
            try:
                return self.adapter_model(inp.adapter, inp.adapter_uri).distribution(inp.prompt), inp.adapter
            except (OSError, ValueError) as exc:
                # Missing or unreadable adapter files: serve the base (as vLLM does for an unknown adapter).
                log.warning("local_adapter_unavailable", adapter=inp.adapter, error=str(exc)[:200])
        return self.model.distribution(inp.prompt), None

    async def decide(self, inp: PolicyInput) -> PolicyDecision:
        loop = asyncio.get_running_loop()
        try:
            probs, adapter = await loop.run_in_executor(self._pool, self._distribution, inp)
        except ValueError as exc:  # e.g. a prompt longer than the model's context
            raise BackendError(str(exc)) from exc
        return PolicyDecision(
            probabilities=checked_distribution(probs),
            backend=self.name,
            model=self.model.model_name,
            adapter=adapter,
        )

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

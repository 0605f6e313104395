"""The in-process policy backend: the shipped model run with torch, with an LRU prefix KV cache.

``distribution(prompt)`` tokenizes exactly as the vLLM server does (``AutoTokenizer`` on the model folder,
default special tokens, so ``[BOS]`` first), runs the model and returns the softmax over the 10 action tokens'
logits at the last position, renormalised over those tokens only. That is the quantity the vLLM backend
computes from the server's logprobs, so the two backends agree to float precision.

Speed comes from the prompt layout: a user's history is append-only, so consecutive prompts share everything
up to ``Current state:``. We keep the attention keys/values of such history prefixes (keyed by their token
ids) in an LRU cache bounded in bytes; a new request runs only the tokens after the longest cached prefix. The
incremental forward pass reuses the model's own modules (projections, RoPE, norms, MLP), so cached and
uncached results agree to float rounding; ``tests/policy/test_local.py`` checks both against the stock
transformers forward.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch.nn import functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerBase
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from policy.paths import MODEL_NAME, SHIPPED_MODEL_DIR
from policy.prompt import CURRENT_PREFIX
from policy.tokenizer import action_token_ids
from sim.domain import N_ACTIONS, RESPONSES

KV = list[tuple[torch.Tensor, torch.Tensor]]
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024


@dataclass
class _Entry:
    kv: KV
    nbytes: int


class PrefixCache:
    """LRU map from a token-id prefix to its per-layer keys/values, bounded by total tensor bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self._lengths: dict[int, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def longest(self, ids: list[int], candidates: list[int]) -> tuple[int, KV | None]:
        """The longest cached prefix ``ids[:n]`` with ``n`` among ``candidates`` (searched longest first)."""
        with self._lock:
            for n in sorted(candidates, reverse=True):
                if n not in self._lengths:
                    continue
                key = tuple(ids[:n])
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return n, entry.kv
            self.misses += 1
            return 0, None

    def put(self, ids: list[int], kv: KV, superseded: list[int] | None = None) -> None:
        """Store ``kv`` for the prefix ``ids``; drop the entry of the ``superseded`` prefix, if cached."""
        nbytes = sum(k.untyped_storage().nbytes() + v.untyped_storage().nbytes() for k, v in kv)
        key = tuple(ids)
        with self._lock:
            if superseded is not None:
                self._remove(tuple(superseded))
            if nbytes > self.max_bytes:
                return
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            self._entries[key] = _Entry(kv, nbytes)
            self._lengths[len(key)] = self._lengths.get(len(key), 0) + 1
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                self._remove(next(iter(self._entries)))

    def _remove(self, key: tuple[int, ...]) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= entry.nbytes
        self._lengths[len(key)] -= 1
        if not self._lengths[len(key)]:
            del self._lengths[len(key)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._lengths.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    @staticmethod
    def bytes_per_token(model: LlamaForCausalLM) -> int:
        """KV-cache bytes one token costs: layers x (keys + values) x kv heads x head dim x float32."""
        config = model.config
        heads = int(config.num_attention_heads)
        head_dim = int(getattr(config, "head_dim", None) or int(config.hidden_size) // heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        return int(config.num_hidden_layers) * 2 * kv_heads * head_dim * 4


class LocalPolicyModel:
    """A frozen policy model in this process; thread-safe (read-only weights, locked cache)."""

    def __init__(
        self,
        model: LlamaForCausalLM,
        tokenizer: PreTrainedTokenizerBase,
        model_name: str = MODEL_NAME,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.model = model.float().eval()  # type: ignore[no-untyped-call]
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.cache = PrefixCache(cache_bytes)
        self.action_ids = action_token_ids(tokenizer)
        self.max_length = int(model.config.max_position_embeddings)
        self._current_id = tokenizer.convert_tokens_to_ids(CURRENT_PREFIX.split()[0])
        self._response_ids = {tokenizer.convert_tokens_to_ids(r.value.upper()) for r in RESPONSES}
        self._line_end_ids = self._response_ids | {tokenizer.convert_tokens_to_ids("days):")}
        inner = self.model.model
        self._layers = list(inner.layers)
        self._n_heads = int(model.config.num_attention_heads)
        self._n_kv_heads = int(model.config.num_key_value_heads or self._n_heads)
        self._head_dim = int(getattr(model.config, "head_dim", model.config.hidden_size // self._n_heads))
        self._action_head = model.lm_head.weight.detach()[self.action_ids].clone()

    @classmethod
    def load(
        cls, model_dir: Path | None = None, *, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> LocalPolicyModel:
        """Load a model folder (default: the weights shipped in the package)."""
        directory = Path(model_dir) if model_dir is not None else SHIPPED_MODEL_DIR
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"no model folder at {directory}")
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = cast(LlamaForCausalLM, AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32))
        name = MODEL_NAME if model_dir is None else directory.name
        return cls(model, tokenizer, model_name=name, cache_bytes=cache_bytes)

    def token_ids(self, prompt: str) -> list[int]:
        ids: list[int] = self.tokenizer(prompt)["input_ids"]
        if len(ids) > self.max_length:
            raise ValueError(f"prompt is {len(ids)} tokens; the model reads at most {self.max_length}")
        return ids

    def distribution(self, prompt: str, *, use_cache: bool = True) -> np.ndarray:
        """Probabilities of the 10 actions (``ACTIONS`` order) as the answer to ``prompt``."""
        ids = self.token_ids(prompt)
        with torch.inference_mode():
            if not use_cache:
                hidden, _ = self._forward(ids, None)
                return self._probabilities(hidden)
            boundary = self._history_end(ids)
            candidates = [i + 1 for i in range(boundary) if ids[i] in self._line_end_ids]
            start, past = self.cache.longest(ids, candidates)
            hidden, kv = self._forward(ids[start:], past)
            if boundary > start:
                # Keep the history part (up to "Current state:") for this user's next request. Slices are
                # views of the tensors just computed; the few question tokens past the boundary are
                # negligible. The shorter prefix this one extends ends in the user's own history line (not in
                # the shared header) and a history only grows, so it is dropped instead of left to age out.
                superseded = ids[:start] if start and ids[start - 1] in self._response_ids else None
                kv_prefix = [(k[:, :, :boundary], v[:, :, :boundary]) for k, v in kv]
                self.cache.put(ids[:boundary], kv_prefix, superseded=superseded)
            return self._probabilities(hidden)

    def _history_end(self, ids: list[int]) -> int:
        for index in range(len(ids) - 1, -1, -1):
            if ids[index] == self._current_id:
                return index
        return 0

    def _probabilities(self, hidden: torch.Tensor) -> np.ndarray:
        logits = hidden @ self._action_head.T
        probs = torch.softmax(logits.double(), dim=-1).numpy()
        assert probs.shape == (N_ACTIONS,)
        return probs.astype(np.float64)

    def _forward(self, ids: list[int], past: KV | None) -> tuple[torch.Tensor, KV]:
        """Run ``ids`` after the cached ``past``; return the last token's hidden state and the new KV."""
        inner = self.model.model
        offset = 0 if past is None else past[0][0].shape[2]
        new = len(ids)
        tokens = torch.tensor([ids], dtype=torch.long)
        hidden = inner.embed_tokens(tokens)
        positions = torch.arange(offset, offset + new, dtype=torch.long).unsqueeze(0)
        cos, sin = inner.rotary_emb(hidden, positions)
        mask = None
        if new > 1:
            # Query i sits at absolute position offset + i and sees keys 0 … offset + i.
            mask = torch.ones(new, offset + new, dtype=torch.bool).tril(diagonal=offset)
        kv: KV = []
        for index, layer in enumerate(self._layers):
            attention = layer.self_attn
            residual = hidden
            normed = layer.input_layernorm(hidden)
            q = attention.q_proj(normed).view(1, new, self._n_heads, self._head_dim).transpose(1, 2)
            k = attention.k_proj(normed).view(1, new, self._n_kv_heads, self._head_dim).transpose(1, 2)
            v = attention.v_proj(normed).view(1, new, self._n_kv_heads, self._head_dim).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            if past is not None:
                k = torch.cat([past[index][0], k], dim=2)
                v = torch.cat([past[index][1], v], dim=2)
            kv.append((k, v))
            if self._n_kv_heads != self._n_heads:
                repeat = self._n_heads // self._n_kv_heads
                k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attention.scaling)
            hidden = residual + attention.o_proj(out.transpose(1, 2).reshape(1, new, -1))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        last = inner.norm(hidden[:, -1:])[0, 0]
        return last, kv

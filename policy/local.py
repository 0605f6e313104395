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

Three more things keep a 30-day request in a few milliseconds (``rhythm bench local-model``):

* keys/values live in an :class:`_Arena` with spare room along the sequence axis, so the request that extends
  a user's cached history writes its new tokens in place instead of copying the whole history (a 30-day
  history is ~6 MB of keys/values; copying it was ~10 % of a request);
* tokenization is per line with a memo: the tokenizer splits on whitespace only (``WhitespaceSplit`` +
  ``WordLevel``), so the ids of a prompt are ``[BOS]`` plus the concatenated ids of its lines, and a growing
  history re-tokenizes only its new lines (tokenizing all ~1,500 words was ~25 % of a request);
* the last layer runs attention and MLP for the answer position only (the others only need its keys/values).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from tokenizers import pre_tokenizers
from torch.nn import functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerBase
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from domain import N_ACTIONS
from policy.paths import MODEL_NAME, SHIPPED_MODEL_DIR
from policy.prompt import CURRENT_PREFIX
from policy.tokenizer import action_token_ids, renderer_version_of, response_token_ids

DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
# Spare positions a new arena gets past what it holds: about 20 history lines, so a growing user's keys and
# values are copied once every ~20 requests rather than on every one, for ~15 % more memory on 30 days.
ARENA_SLACK = 256
# Token ids of recently seen prompt lines (~0.4 KB each): the hot users' histories, ~25 MB at most.
LINE_MEMO_SIZE = 1 << 16


class _Arena:
    """Keys and values of every layer for one token sequence, ``(layers, 1, kv_heads, capacity, head_dim)``,
    filled up to ``filled``. Cached prefixes are views of its first ``n`` positions; a request may append in
    place only if it continues exactly where the arena's last writer stopped (``claim``), so no view that a
    cache entry or another thread holds ever sees its positions change."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, capacity: int) -> None:
        self.keys = torch.empty(layers, 1, kv_heads, capacity, head_dim)
        self.values = torch.empty(layers, 1, kv_heads, capacity, head_dim)
        self.filled = 0
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return int(self.keys.shape[3])

    @property
    def nbytes(self) -> int:
        return 2 * self.keys.untyped_storage().nbytes()

    def claim(self, length: int, new: int) -> bool:
        """Reserve positions ``length … length + new`` if nobody has written past ``length``."""
        with self._lock:
            if self.filled != length or length + new > self.capacity:
                return False
            self.filled = length + new
            return True

    def release(self, keep: int) -> None:
        """After a write: positions past ``keep`` are scratch (the question) and may be reused."""
        with self._lock:
            self.filled = keep


@dataclass(frozen=True)
class Prefix:
    """The first ``length`` positions of an arena: the keys/values of a cached token prefix."""

    arena: _Arena
    length: int


@dataclass
class _Entry:
    prefix: Prefix
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

    def longest(self, ids: list[int], candidates: list[int]) -> tuple[int, Prefix | None]:
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
                    return n, entry.prefix
            self.misses += 1
            return 0, None

    def put(self, ids: list[int], prefix: Prefix, superseded: list[int] | None = None) -> None:
        """Store ``prefix`` for the token ids ``ids``; drop the entry of the ``superseded`` prefix, if cached.

        An entry is charged its whole arena (spare room included); two entries sharing an arena are charged
        twice, which errs on the side of the budget."""
        nbytes = prefix.arena.nbytes
        key = tuple(ids)
        with self._lock:
            if superseded is not None:
                self._remove(tuple(superseded))
            if nbytes > self.max_bytes:
                return
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            self._entries[key] = _Entry(prefix, nbytes)
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
        # The prompt text version this model reads (policy.prompt.RENDERER_VERSION): from its tokenizer.
        self.renderer_version = renderer_version_of(tokenizer)
        self.max_length = int(model.config.max_position_embeddings)
        self._current_id = tokenizer.convert_tokens_to_ids(CURRENT_PREFIX.split()[0])
        self._response_ids = set(response_token_ids(tokenizer))
        self._line_end_ids = self._response_ids | {cast(int, tokenizer.convert_tokens_to_ids("days):"))}
        inner = self.model.model
        self._layers = list(inner.layers)
        self._n_heads = int(model.config.num_attention_heads)
        self._n_kv_heads = int(model.config.num_key_value_heads or self._n_heads)
        self._head_dim = int(getattr(model.config, "head_dim", model.config.hidden_size // self._n_heads))
        self._action_head = model.lm_head.weight.detach()[self.action_ids].clone()
        self._backend = tokenizer.backend_tokenizer
        self._bos_id = int(tokenizer.bos_token_id)
        self._line_ids = functools.lru_cache(maxsize=LINE_MEMO_SIZE)(self._encode_line)
        if not self._splits_on_whitespace_only():
            raise ValueError("the local backend needs the word-level tokenizer of policy/tokenizer.py")

    def _splits_on_whitespace_only(self) -> bool:
        """Per-line tokenization equals whole-prompt tokenization only for a whitespace-split tokenizer with
        no normalizer that adds just ``[BOS]`` in front; check the folder's tokenizer is that one."""
        backend = self._backend
        probe = "Recent interactions (last 30 days):\nMon Morning, Vitality=0.70 →  x\n\nCurrent state:"
        return (
            isinstance(backend.pre_tokenizer, pre_tokenizers.WhitespaceSplit)
            and backend.normalizer is None
            and backend.encode(probe).ids == self.token_ids(probe)
        )

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
        """The ids the tokenizer (and so the vLLM server) gives ``prompt``: ``[BOS]`` plus each line's ids."""
        ids = [self._bos_id]
        for line in prompt.split("\n"):
            ids.extend(self._line_ids(line))
        if len(ids) > self.max_length:
            raise ValueError(f"prompt is {len(ids)} tokens; the model reads at most {self.max_length}")
        return ids

    def _encode_line(self, line: str) -> tuple[int, ...]:
        return tuple(self._backend.encode(line, add_special_tokens=False).ids)

    def distribution(self, prompt: str, *, use_cache: bool = True) -> np.ndarray:
        """Probabilities of the 10 actions (``ACTIONS`` order) as the answer to ``prompt``."""
        ids = self.token_ids(prompt)
        with torch.inference_mode():
            if not use_cache:
                return self._probabilities(self._forward(ids, None, 0)[0])
            boundary = self._history_end(ids)
            candidates = [i + 1 for i in range(boundary) if ids[i] in self._line_end_ids]
            start, past = self.cache.longest(ids, candidates)
            # Keep the history part (up to "Current state:") for this user's next request; the few question
            # tokens past the boundary become scratch space for the next writer.
            keep = max(boundary, start)
            hidden, arena = self._forward(ids[start:], past, keep)
            if boundary > start:
                # The shorter prefix this one extends ends in the user's own history line (not in the shared
                # header) and a history only grows, so it is dropped instead of left to age out.
                superseded = ids[:start] if start and ids[start - 1] in self._response_ids else None
                self.cache.put(ids[:boundary], Prefix(arena, boundary), superseded=superseded)
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

    def _arena_for(self, past: Prefix | None, new: int) -> _Arena:
        """An arena holding ``past`` with room for ``new`` more positions, which the caller must release:
        ``past``'s own when it can be extended in place (claimed), else a fresh copy with spare room."""
        if past is not None and past.arena.claim(past.length, new):
            return past.arena
        length = 0 if past is None else past.length
        capacity = min(self.max_length, length + new + ARENA_SLACK)
        arena = _Arena(len(self._layers), self._n_kv_heads, self._head_dim, capacity)
        if past is not None:
            arena.keys[:, :, :, :length] = past.arena.keys[:, :, :, :length]
            arena.values[:, :, :, :length] = past.arena.values[:, :, :, :length]
        return arena

    def _forward(self, ids: list[int], past: Prefix | None, keep: int) -> tuple[torch.Tensor, _Arena]:
        """Run ``ids`` after the cached ``past``; return the last token's final hidden state and the arena
        holding the keys/values of every position (valid up to ``keep`` once this returns)."""
        inner = self.model.model
        offset = 0 if past is None else past.length
        new = len(ids)
        total = offset + new
        arena = self._arena_for(past, new)
        try:
            tokens = torch.tensor([ids], dtype=torch.long)
            hidden = inner.embed_tokens(tokens)
            positions = torch.arange(offset, total, dtype=torch.long).unsqueeze(0)
            cos, sin = inner.rotary_emb(hidden, positions)
            mask = None
            if new > 1:
                # Query i sits at absolute position offset + i and sees keys 0 … offset + i.
                mask = torch.ones(new, total, dtype=torch.bool).tril(diagonal=offset)
            last_layer = len(self._layers) - 1
            for index, layer in enumerate(self._layers):
                attention = layer.self_attn
                normed = layer.input_layernorm(hidden)
                q = attention.q_proj(normed).view(1, new, self._n_heads, self._head_dim).transpose(1, 2)
                k = attention.k_proj(normed).view(1, new, self._n_kv_heads, self._head_dim).transpose(1, 2)
                v = attention.v_proj(normed).view(1, new, self._n_kv_heads, self._head_dim).transpose(1, 2)
                q, k = apply_rotary_pos_emb(q, k, cos, sin)
                arena.keys[index, :, :, offset:total] = k
                arena.values[index, :, :, offset:total] = v
                k, v = arena.keys[index, :, :, :total], arena.values[index, :, :, :total]
                if self._n_kv_heads != self._n_heads:
                    repeat = self._n_heads // self._n_kv_heads
                    k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
                layer_mask = mask
                if index == last_layer:
                    # Only the answer position's output is read; it sees every key, so no mask either.
                    hidden, q, layer_mask = hidden[:, -1:], q[:, :, -1:], None
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=layer_mask, scale=attention.scaling)
                rows = out.shape[2]
                hidden = hidden + attention.o_proj(out.transpose(1, 2).reshape(1, rows, -1))
                hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
            return inner.norm(hidden[:, -1:])[0, 0], arena
        finally:
            # Past ``keep`` the arena is scratch: the next request of this user overwrites it in place.
            arena.release(keep)

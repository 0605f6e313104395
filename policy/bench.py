"""``rhythm bench local-model``: latency of the in-process backend on a realistic request stream.

The stream: several users, each with a history that grows by one interaction per request (the service's
pattern: recommend, get feedback, recommend again), measured over the last week before the history
reaches ``days`` days (``4 * days`` interactions, 120 for the default 30). Users take turns, so the cache
holds several users at once. Every request is timed end to end in this process: render the prompt,
tokenize, run the model, softmax over the actions. The same prompts are then timed with the prefix cache off
(a full prefill each time), which is the baseline of the same run.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from domain import ACTIONS, RESPONSES, Interaction, Meters, Slot, SlotState
from policy.local import LocalPolicyModel
from policy.prompt import render_prompt

# The service runs the local backend with one torch intra-op thread (app/recommend): a suffix pass is many
# tiny ops, and on a busy 2-core machine OpenMP barriers between 2 threads stall for whole time slices
# (measured here: cached p50 6 ms with 1 thread vs 50 ms with 2 while another job trained). ``--threads``
# overrides it.
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class LatencyReport:
    users: int
    requests_per_user: int
    history_interactions: tuple[int, int]
    prompt_tokens: tuple[int, int]
    cached_ms: list[float]
    uncached_ms: list[float]
    hit_rate: float

    @staticmethod
    def _pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q))

    def summary(self) -> dict[str, object]:
        cached_p50, uncached_p50 = self._pct(self.cached_ms, 50), self._pct(self.uncached_ms, 50)
        return {
            "users": self.users,
            "requests": len(self.cached_ms),
            "history_interactions": list(self.history_interactions),
            "prompt_tokens": list(self.prompt_tokens),
            "cached_p50_ms": round(cached_p50, 3),
            "cached_p99_ms": round(self._pct(self.cached_ms, 99), 3),
            "uncached_p50_ms": round(uncached_p50, 3),
            "uncached_p99_ms": round(self._pct(self.uncached_ms, 99), 3),
            "speedup_p50": round(uncached_p50 / cached_p50, 1),
            "cache_hit_rate": round(self.hit_rate, 3),
            "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(),
        }


def _history(rng: np.random.Generator, n: int) -> list[Interaction]:
    items = []
    for t in range(n):
        state = SlotState((t // 4) % 7, Slot(t % 4), Meters.from_sequence(rng.uniform(0.2, 0.9, 5).tolist()))
        items.append(Interaction(state, ACTIONS[int(rng.integers(10))], RESPONSES[int(rng.integers(3))]))
    return items


def run_local_model_bench(
    model_dir: Path | None = None,
    *,
    days: int = 30,
    users: int = 4,
    requests_per_user: int = 28,
    seed: int = 0,
    threads: int = DEFAULT_THREADS,
) -> LatencyReport:
    """Time the growing-history stream with the prefix cache, then the same prompts without it."""
    torch.set_num_threads(threads)
    model = LocalPolicyModel.load(model_dir)
    rng = np.random.default_rng(seed)
    final = 4 * days
    first = final - requests_per_user
    histories = [_history(rng, final + 1) for _ in range(users)]
    # Warm-up outside the measurement: each user's history up to the first measured request is already known
    # to the server (it has been recommending to them all along).
    for history in histories:
        model.distribution(render_prompt(history[:first], history[first].state))
    model.cache.hits = model.cache.misses = 0
    cached, prompts = [], []
    for n in range(first + 1, final + 1):
        for history in histories:
            started = time.perf_counter()
            prompt = render_prompt(history[:n], history[n].state)
            model.distribution(prompt)
            cached.append((time.perf_counter() - started) * 1000)
            prompts.append((history, n))
    hit_rate = model.cache.hits / max(1, model.cache.hits + model.cache.misses)
    uncached = []
    for history, n in prompts:
        started = time.perf_counter()
        model.distribution(render_prompt(history[:n], history[n].state), use_cache=False)
        uncached.append((time.perf_counter() - started) * 1000)
    lengths = [len(model.token_ids(render_prompt(h[:n], h[n].state))) for h, n in (prompts[0], prompts[-1])]
    return LatencyReport(
        users, requests_per_user, (first + 1, final), (lengths[0], lengths[1]), cached, uncached, hit_rate
    )


def plot_latency(report: LatencyReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    low, high = np.log10(min(report.cached_ms) * 0.8), np.log10(max(report.uncached_ms) * 1.2)
    bins = np.logspace(low, high, 40).tolist()
    ax.hist(report.cached_ms, bins=bins, alpha=0.7, label="prefix cache")
    ax.hist(report.uncached_ms, bins=bins, alpha=0.7, label="full prefill (baseline)")
    ax.axvline(5.0, color="k", linestyle="--", linewidth=1, label="5 ms target")
    ax.set_xscale("log")
    ax.set_xlabel("latency per recommendation (ms, render + tokenize + model)")
    ax.set_ylabel("requests")
    threads = torch.get_num_threads()
    ax.set_title(f"Local backend, {report.history_interactions[1]}-interaction history, {threads} thread(s)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)

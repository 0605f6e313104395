from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from policy.local import LocalPolicyModel
from policy.paths import MODEL_NAME
from policy.prompt import render_prompt
from policy.tokenizer import action_token_ids
from tests.policy.conftest import make_history


def stock_distribution(model_dir: Path, prompt: str) -> np.ndarray:
    """The reference: plain transformers forward, softmax over the action tokens at the last position."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()  # type: ignore[no-untyped-call]
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        logits = model(ids).logits[0, -1, action_token_ids(tokenizer)]
    return torch.softmax(logits.double(), dim=-1).numpy()


def assert_threads_match_uncached(model: LocalPolicyModel, prompts: list[str], rounds: int) -> None:
    """Answer ``prompts`` from 4 threads on a cold cache, ``rounds`` times; each answer must equal the
    uncached one. Which request extends which cached prefix depends on the race, and each split of the
    forward pass rounds differently (~1e-5 on the deliberately sharp random model); a corrupted cache is off
    by ~0.1."""
    expected = [model.distribution(p, use_cache=False) for p in prompts]
    for _ in range(rounds):
        model.cache.clear()
        with ThreadPoolExecutor(max_workers=4) as pool:
            got = list(pool.map(model.distribution, prompts))
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_shipped_model_loads_by_default() -> None:
    model = LocalPolicyModel.load()
    assert model.model_name == MODEL_NAME
    p = model.distribution(render_prompt(*make_history(3)))
    assert p.shape == (10,) and p.sum() == pytest.approx(1.0) and (p >= 0).all()


def test_distribution_matches_stock_transformers(random_model_dir: Path) -> None:
    model = LocalPolicyModel.load(random_model_dir)
    history, current = make_history(30, seed=11)
    prompt = render_prompt(history, current)
    expected = stock_distribution(random_model_dir, prompt)
    assert expected.max() > 0.2  # the random model is not flat, so the comparison means something
    np.testing.assert_allclose(model.distribution(prompt, use_cache=False), expected, atol=1e-5)
    np.testing.assert_allclose(model.distribution(prompt), expected, atol=1e-5)


def test_prefix_cached_distribution_equals_uncached_along_a_growing_history(random_model_dir: Path) -> None:
    model = LocalPolicyModel.load(random_model_dir)
    history, _ = make_history(130, seed=12)
    for n in range(0, 129):
        prompt = render_prompt(history[:n], history[n].state)
        cached = model.distribution(prompt)
        if n % 8 == 0 or n == 128:  # a full prefill is the slow part; check a sample of the stream
            np.testing.assert_allclose(cached, model.distribution(prompt, use_cache=False), atol=1e-5)
    assert model.cache.hits >= 126  # every request after the first two reused a prefix
    # One growing user keeps one history entry (plus the shared header), not one per request.
    assert len(model.cache) <= 3


def test_cache_respects_its_byte_budget(random_model_dir: Path) -> None:
    budget = 8 * 1024 * 1024  # about two 60-interaction histories
    model = LocalPolicyModel.load(random_model_dir, cache_bytes=budget)
    for seed in range(8):
        history, current = make_history(60, seed=100 + seed)
        model.distribution(render_prompt(history, current))
    assert 0 < model.cache.nbytes <= budget
    assert 1 <= len(model.cache) < 8


def test_concurrent_calls_give_the_same_answers(random_model_dir: Path) -> None:
    model = LocalPolicyModel.load(random_model_dir)
    prompts = []
    for seed in range(4):
        history, _ = make_history(40, seed=200 + seed)
        prompts += [render_prompt(history[:n], history[n].state) for n in range(34, 40)]
    assert_threads_match_uncached(model, prompts, rounds=1)


def test_over_long_prompt_is_refused(random_model_dir: Path) -> None:
    model = LocalPolicyModel.load(random_model_dir)
    history, current = make_history(150)
    prompt = render_prompt(history, current, max_interactions=150) + " Recommend an action:" * 40
    with pytest.raises(ValueError, match="at most"):
        model.distribution(prompt)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LocalPolicyModel.load(tmp_path / "nope")


def test_threads_sharing_a_prefix_then_diverging_get_exact_answers(random_model_dir: Path) -> None:
    """Four users with the same first 30 interactions, then their own: their requests race to extend the
    shared cached prefix in place, and every answer must still equal the uncached one."""
    model = LocalPolicyModel.load(random_model_dir)
    shared, _ = make_history(30, seed=300)
    streams = []
    for seed in range(4):
        own, _ = make_history(12, seed=400 + seed)
        history = shared + own
        streams.append([render_prompt(history[:n], history[n].state) for n in range(28, 42)])
    prompts = [p for group in zip(*streams, strict=True) for p in group]  # interleaved users
    assert_threads_match_uncached(model, prompts, rounds=3)


def test_repeated_and_rewound_requests_do_not_corrupt_the_cached_history(random_model_dir: Path) -> None:
    """Asking twice for the same history with different current states reuses the cached keys in place; a
    client that then sends an older history (a shorter prefix) still gets the exact answer."""
    model = LocalPolicyModel.load(random_model_dir)
    history, _ = make_history(40, seed=500)
    prompts = [
        render_prompt(history[:30], history[30].state),
        render_prompt(history[:30], history[35].state),
        render_prompt(history[:31], history[31].state),
        render_prompt(history[:30], history[30].state),
        render_prompt(history[:33], history[33].state),
        render_prompt(history[:31], history[32].state),
    ]
    for prompt in prompts:
        np.testing.assert_allclose(
            model.distribution(prompt), model.distribution(prompt, use_cache=False), atol=1e-5
        )


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "a\n\nb",
        "x\r\ny \t z\n",
        "\u2028 DEEP_WORK\u00a0user:",
        "Current state:\n\nRecommend an action:",
    ],
)
def test_per_line_tokenization_equals_the_tokenizer(random_model_dir: Path, text: str) -> None:
    model = LocalPolicyModel.load(random_model_dir)
    assert model.token_ids(text) == model.tokenizer(text)["input_ids"]
    history, current = make_history(45, seed=600)
    prompt = render_prompt(history, current)
    assert model.token_ids(prompt) == model.tokenizer(prompt)["input_ids"]

"""The offline gate's estimator and decisions, on logs whose answers are known."""

from __future__ import annotations

from typing import Any

import numpy as np

from policy.gate import GateDecision, Stats, decide, on_policy_stats, snips_stats


def _log(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A uniform logging policy over 10 actions; only action 3 is ever accepted."""
    rng = np.random.default_rng(seed)
    logged = np.full((n, 10), 0.1)
    actions = rng.integers(0, 10, n)
    rewards = (actions == 3).astype(float)
    return logged, actions, logged[np.arange(n), actions], rewards


def test_snips_recovers_the_value_of_a_policy_that_always_picks_the_accepted_action() -> None:
    _, actions, propensities, rewards = _log(2000)
    always_3 = np.zeros((2000, 10))
    always_3[:, 3] = 1.0
    stats = snips_stats(always_3, actions, propensities, rewards)
    assert stats.value == 1.0
    assert abs(stats.ess - (actions == 3).sum()) < 1e-6  # weights are 10 on those rows, 0 elsewhere
    assert abs(on_policy_stats(rewards).value - 0.1) < 0.02


def test_sums_pool_exactly() -> None:
    a = Stats.of(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    b = Stats.of(np.array([3.0]), np.array([1.0]))
    both = Stats.of(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 1.0]))
    assert a + b == both
    assert abs(both.value - 4.0 / 6.0) < 1e-12 and abs(both.ess - 36.0 / 14.0) < 1e-12


def test_better_promotes_worse_holds_back_and_thin_evidence_is_not_enough() -> None:
    _, actions, propensities, rewards = _log(2000)
    good = np.full((2000, 10), 0.02)
    good[:, 3] = 0.82
    bad = np.full((2000, 10), 0.1 / 9 * 10 / 10)
    bad[:, 3] = 0.0
    bad /= bad.sum(axis=1, keepdims=True)
    current = on_policy_stats(rewards)
    kwargs: dict[str, Any] = {"margin": 0.02, "min_ess": 50.0, "z": 1.645}
    assert decide(snips_stats(good, actions, propensities, rewards), current, **kwargs).decision is (
        GateDecision.PROMOTED
    )
    assert decide(snips_stats(bad, actions, propensities, rewards), current, **kwargs).decision is (
        GateDecision.HELD_BACK
    )
    # 30 decisions of one user: too few effective samples alone; enough once the week's others are pooled.
    _, a30, p30, r30 = _log(30, seed=1)
    thin = decide(snips_stats(good[:30], a30, p30, r30), on_policy_stats(r30), **kwargs)
    assert thin.decision is GateDecision.NOT_ENOUGH_EVIDENCE and not thin.promote
    others = [
        decide(
            snips_stats(good[:30], *_log(30, seed=s)[1:]), on_policy_stats(_log(30, seed=s)[3]), **kwargs
        ).stats
        for s in range(2, 17)
    ]
    pooled = decide(snips_stats(good[:30], a30, p30, r30), on_policy_stats(r30), pool=others, **kwargs)
    assert pooled.decision is GateDecision.PROMOTED_POOLED and pooled.pooled is not None
    assert pooled.pooled["users"] == 16 and pooled.pooled["ess"] >= 50.0

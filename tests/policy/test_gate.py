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


def test_a_user_whose_interval_is_too_wide_is_decided_on_the_weeks_pool() -> None:
    """Enough effective samples but a wide interval (a month's held-out week of one person): alone that is
    not enough evidence, neither promoted nor called worse; the week's pool decides."""
    kwargs: dict[str, Any] = {"margin": 0.02, "min_ess": 20.0, "z": 1.645, "max_halfwidth": 0.1}
    rng = np.random.default_rng(4)

    def user(seed: int) -> tuple[Stats, Stats]:
        # Logged near-uniformly; the person accepts action 3 and, half the time, action 5.
        local = np.random.default_rng(seed)
        logged = np.full((28, 10), 0.1)
        actions = local.integers(0, 10, 28)
        rewards = ((actions == 3) | ((actions == 5) & (local.random(28) < 0.5))).astype(float)
        candidate = np.full((28, 10), 0.09)
        candidate[:, 3] = 0.19
        propensities = logged[np.arange(28), actions]
        return snips_stats(candidate, actions, propensities, rewards), on_policy_stats(rewards)

    new, cur = user(int(rng.integers(1 << 30)))
    alone = decide(new, cur, **kwargs)
    assert new.ess >= 20.0 and alone.difference - alone.difference_lower > 0.1
    assert alone.decision is GateDecision.NOT_ENOUGH_EVIDENCE and not alone.promote
    # Without the width rule the same user is decided alone (and, with this interval, only held back).
    assert decide(new, cur, **{**kwargs, "max_halfwidth": np.inf}).decision is GateDecision.HELD_BACK
    others = [decide(*user(s), **kwargs).stats for s in range(100, 140)]
    pooled = decide(new, cur, pool=others, **kwargs)
    assert pooled.pooled is not None and pooled.pooled["users"] == 41
    assert pooled.pooled["difference_halfwidth"] <= 0.1
    assert pooled.decision is GateDecision.PROMOTED_POOLED

"""Calibration of a policy's distribution: do its probabilities off the top choice mean anything?

From one rollout (:class:`sim.rollout.Trajectories`), every decision's distribution is ranked (rank 1 = the
policy's most likely action). Per rank ``r``:

* ``mean_probability``: the policy's mean probability of its rank-``r`` action;
* ``true_accept``: the mean true P(accept) of the rank-``r`` action in that state (the simulator knows it, so
  this is noise-free and defined even for ranks the policy never plays);
* ``chosen`` / ``realised_accept``: how often the sampled action had rank ``r``, and the share of those that
  were accepted (``None`` when never chosen: a near-deterministic policy rarely plays its runner-up).

A calibrated posterior-sampling policy has ranks whose probabilities fall with their true acceptance; a model
sharpened to near one-hot puts ~0 on every rank but the first whatever the person would accept.
``runner_up_gap_nats``: ``log p(rank 1) - log p(rank 2)`` per decision, median / p10 / p90; probabilities
are floored at ``PROB_FLOOR`` (a float32 softmax underflows near 1e-45, i.e. ~103 nats), and
``capped_share`` is the share of decisions whose runner-up sat at that floor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.rollout import Trajectories

PROB_FLOOR = 1e-45


def calibration_report(traj: Trajectories, ranks: int = 5) -> dict[str, Any]:
    probs = traj.probs
    order = np.argsort(-probs, axis=2, kind="stable")  # (N, T, 10) action at each rank
    sorted_p = np.take_along_axis(probs, order, axis=2)
    true_p = np.take_along_axis(traj.p_accept, order, axis=2)
    chosen_rank = (order == traj.actions[:, :, None]).argmax(axis=2)
    accepted = traj.accepted
    rows = []
    for r in range(min(ranks, probs.shape[2])):
        mask = chosen_rank == r
        rows.append(
            {
                "rank": r + 1,
                "mean_probability": float(sorted_p[:, :, r].mean()),
                "true_accept": float(true_p[:, :, r].mean()),
                "chosen": int(mask.sum()),
                "realised_accept": float(accepted[mask].mean()) if mask.any() else None,
            }
        )
    top = np.maximum(sorted_p[:, :, 0], PROB_FLOOR)
    second = np.maximum(sorted_p[:, :, 1], PROB_FLOOR)
    gap = (np.log(top) - np.log(second)).reshape(-1)
    return {
        "decisions": int(gap.size),
        "ranks": rows,
        "runner_up_gap_nats": {
            "median": float(np.median(gap)),
            "p10": float(np.quantile(gap, 0.1)),
            "p90": float(np.quantile(gap, 0.9)),
            "capped_share": float((sorted_p[:, :, 1] <= PROB_FLOOR).mean()),
        },
    }

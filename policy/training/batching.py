"""Batching: group sequences of similar length under a token budget and collate them into padded tensors.

The targets are materialised here, at the inverse temperature the caller asks for, from the teacher's
posterior-mean acceptance that each :class:`policy.training.data.Sequence` carries; the same sequences thus
serve the training beta and the serving beta of the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from policy.teacher import softmax_policy
from policy.training.data import Sequence


@dataclass
class Batch:
    ids: torch.Tensor  # (B, T) right-padded
    mask: torch.Tensor  # (B, T) 1 on real tokens
    index: torch.Tensor  # (2, D) (row, position) of every decision
    targets: torch.Tensor  # (D, 10) the teacher's distribution at the batch's inverse temperature
    response_index: torch.Tensor  # (2, R) (row, position) of every ``user:`` token
    response_targets: torch.Tensor  # (R, 3)


def make_batches(sequences: list[Sequence], batch_tokens: int, rng: np.random.Generator) -> list[list[int]]:
    """Group sequences of similar length so that ``batch size x longest <= batch_tokens`` (little padding)."""
    order = sorted(range(len(sequences)), key=lambda i: (len(sequences[i].ids), rng.random()))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        size = len(sequences[index].ids)
        if current and max(longest, size) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, size)
    if current:
        batches.append(current)
    return batches


def collate(sequences: list[Sequence], pad_id: int, beta: float) -> Batch:
    """Right-padded ids and mask, flat (row, position) indices of the decisions with the teacher's
    distribution at inverse temperature ``beta``, and of the ``user:`` tokens with their labels."""
    longest = max(len(s.ids) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    rows, cols, response_rows, response_cols = [], [], [], []
    for row, seq in enumerate(sequences):
        ids[row, : len(seq.ids)] = torch.from_numpy(seq.ids)
        mask[row, : len(seq.ids)] = 1
        rows.append(np.full(len(seq.positions), row))
        cols.append(seq.positions)
        response_rows.append(np.full(len(seq.response_positions), row))
        response_cols.append(seq.response_positions)
    return Batch(
        ids,
        mask,
        torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]).astype(np.int64)),
        torch.from_numpy(
            softmax_policy(np.concatenate([s.mean_accept for s in sequences]), beta).astype(np.float32)
        ),
        torch.from_numpy(
            np.stack([np.concatenate(response_rows), np.concatenate(response_cols)]).astype(np.int64)
        ),
        torch.from_numpy(np.concatenate([s.response_targets for s in sequences]).astype(np.float32)),
    )

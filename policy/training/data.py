"""Training data: simulator rollouts turned into token sequences with their supervised positions and targets.

Each user's episode, cut at a random length ``L`` (1 … 120 interactions), becomes ONE prompt rendered by the
production renderer (:func:`policy.prompt.render_prompt`): the first ``L - 1`` steps as history lines, step
``L`` as ``Current state:`` and the question. The model's next-token distribution is supervised at every
``recommended`` token (where the action of that history line comes next) and at the final
``Recommend an action:``; the response after every ``user:`` token is the auxiliary label. One forward pass
trains all ``L`` decisions.

:func:`episodes_to_sequences` is independent of how the episodes were produced (a fine-tune can feed it its
own rollouts); :func:`generate_sequences` is the pretraining's source: the exploring teacher
(:mod:`policy.teacher`) on users drawn from a broad profile mix for 1–5 weeks each, in worker processes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerFast

from domain import ACTIONS, N_METERS, RESPONSES, Interaction, Meters, Slot, SlotState
from policy.prompt import DEFAULT_MAX_INTERACTIONS, RENDERER_VERSION, render_prompt, shown_meters
from policy.teacher import Episodes, generate_episodes
from policy.tokenizer import build_tokenizer
from policy.training.config import MissingMeters, PretrainConfig, chunk_plan
from policy.training.dpt import generate_dpt_episodes
from policy.training.seeds import chunk_seed, chunk_sizes

WINDOW_CHOICES = (7, 14, 28, 30, 30, 30, 30)


@dataclass
class Sequence:
    ids: np.ndarray  # (T,) token ids
    positions: np.ndarray  # (L,) where a decision is supervised
    mean_accept: np.ndarray  # (L, 10) the teacher's posterior-mean P(accept) of every action
    # Positions of the ``user:`` tokens: the next token is the person's response (ACCEPTED / IGNORED / …).
    response_positions: np.ndarray
    # (L - 1, 3) the label at each of those positions over the response tokens in RESPONSES order: the
    # simulator's true response distribution of that action in that state, or the one-hot of what happened.
    response_targets: np.ndarray


def _meters(values: np.ndarray, missing: np.ndarray | None) -> Meters:
    clipped = np.clip(values, 0.0, 1.0)
    return shown_meters((clipped if missing is None else np.where(missing, np.nan, clipped)).tolist())


def _interaction(
    day: int, slot: int, meters: np.ndarray, action: int, response: int, missing: np.ndarray | None = None
) -> Interaction:
    state = SlotState(day, Slot(slot), _meters(meters, missing))
    return Interaction(state, ACTIONS[action], RESPONSES[response])


def missing_masks(n_steps: int, plan: MissingMeters, rng: np.random.Generator) -> np.ndarray:
    """One user's (n_steps, N_METERS) mask of missing meters under ``plan`` (see :class:`MissingMeters`)."""
    mask = np.zeros((n_steps, N_METERS), dtype=bool)
    draw = rng.random()
    if draw < plan.no_device:
        mask[:] = True
        return mask
    if draw < plan.no_device + plan.some:
        subset = rng.random(N_METERS) < 0.5
        if not subset.any():
            subset[rng.integers(N_METERS)] = True
        mask[:, subset] = True
    if rng.random() < plan.gaps:
        rate = rng.uniform(0.0, plan.max_gap_rate)
        mask |= rng.random((n_steps, N_METERS)) < rate
    return mask


def episodes_to_sequences(
    episodes: Episodes,
    tokenizer: PreTrainedTokenizerFast,
    rng: np.random.Generator,
    *,
    soft_responses: bool = False,
    renderer_version: int = RENDERER_VERSION,
    missing: MissingMeters | None = None,
) -> list[Sequence]:
    """One training sequence per user: the episode cut at a random length, rendered for production.

    With ``missing`` (renderer version 2 and later) each user's meters are hidden by :func:`missing_masks`;
    the targets stay those of the full state."""
    if missing is not None and renderer_version < 2:
        raise ValueError("renderer version 1 has no token for a missing meter")
    tr = episodes.trajectories
    if not soft_responses:
        response_labels = np.eye(len(RESPONSES))[tr.responses]
    elif tr.p_response is not None:
        response_labels = tr.p_response
    else:
        raise ValueError("soft response labels need trajectories with p_response")
    recommended = tokenizer.convert_tokens_to_ids("recommended")
    user_said = tokenizer.convert_tokens_to_ids("user:")
    prompts, lengths = [], []
    # The masks have a stream of their own (spawning does not advance ``rng``), so the same episodes cut and
    # shifted the same way with and without missing meters differ only in the hidden meters.
    mask_rng = rng.spawn(1)[0]
    for user in range(tr.n_users):
        length = int(rng.integers(1, min(tr.n_steps, DEFAULT_MAX_INTERACTIONS) + 1))
        # Half the episodes start on another weekday: the dynamics ignore the weekday, real histories do not
        # start on Mondays, and the model must not learn that they do.
        shift = int(rng.integers(0, 7)) if rng.random() < 0.5 else 0
        days = (tr.day[user, :length] + shift) % 7
        mask = None if missing is None else missing_masks(length, missing, mask_rng)
        history = [
            _interaction(
                int(days[t]),
                int(tr.slot[user, t]),
                tr.meters[user, t],
                int(tr.actions[user, t]),
                int(tr.responses[user, t]),
                None if mask is None else mask[t],
            )
            for t in range(length - 1)
        ]
        last = length - 1
        current = SlotState(
            int(days[last]),
            Slot(int(tr.slot[user, last])),
            _meters(tr.meters[user, last], None if mask is None else mask[last]),
        )
        window = int(rng.choice(WINDOW_CHOICES))
        prompts.append(render_prompt(history, current, window_days=window, version=renderer_version))
        lengths.append(length)
    encoded = tokenizer(prompts)["input_ids"]
    sequences = []
    for user, (ids, length) in enumerate(zip(encoded, lengths, strict=True)):
        ids_array = np.asarray(ids, dtype=np.int64)
        positions = np.concatenate([np.flatnonzero(ids_array == recommended), [len(ids) - 1]])
        if len(positions) != length:
            raise AssertionError(f"expected {length} decisions, found {len(positions)}")
        sequences.append(
            Sequence(
                ids_array,
                positions,
                episodes.mean_accept[user, :length].astype(np.float32),
                np.flatnonzero(ids_array == user_said),
                response_labels[user, : length - 1].astype(np.float32),
            )
        )
    return sequences


@dataclass(frozen=True)
class _Chunk:
    """One slice of the teacher rollouts: ``users`` users for ``weeks`` weeks, part ``part`` of the
    ``mix_index``-th entry of WEEK_MIX; its seeds derive from that position."""

    index: int
    users: int
    weeks: int
    mix_index: int
    part: int
    mode: str | None = None


def _chunks(config: PretrainConfig) -> list[_Chunk]:
    chunks: list[_Chunk] = []
    for mix_index, (weeks, share, mode) in enumerate(chunk_plan(config.recipe)):
        for part, n in enumerate(chunk_sizes(config.users, share)):
            chunks.append(_Chunk(len(chunks), n, weeks, mix_index, part, mode))
    return chunks


def _chunk_sequences(config: PretrainConfig, chunk: _Chunk) -> list[Sequence]:
    """Teacher rollouts of one chunk as training sequences (runs in a worker process)."""
    if chunk.mode is not None:
        episodes = generate_dpt_episodes(
            chunk.users, chunk.weeks, chunk_seed(config.seed, chunk.mix_index, chunk.part), chunk.mode
        )
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1, chunk.mix_index, chunk.part]))
        return _to_sequences(config, episodes, rng)
    episodes = generate_episodes(
        chunk.users,
        chunk.weeks,
        seed=chunk_seed(config.seed, chunk.mix_index, chunk.part),
        n_particles=config.particles,
        mix=config.mix,
        beta=config.beta,
        max_epsilon=config.max_epsilon,
    )
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1, chunk.mix_index, chunk.part]))
    return _to_sequences(config, episodes, rng)


def _to_sequences(config: PretrainConfig, episodes: Episodes, rng: np.random.Generator) -> list[Sequence]:
    return episodes_to_sequences(
        episodes,
        build_tokenizer(config.renderer_version),
        rng,
        soft_responses=config.soft_responses,
        renderer_version=config.renderer_version,
        missing=config.missing if config.renderer_version >= 2 else None,
    )


def generate_sequences(config: PretrainConfig, on_chunk: Callable[[int], None]) -> list[Sequence]:
    """Teacher rollouts for ``config.users`` users over the week mix, as training sequences.

    Chunks are independent (each has its own seeds), so they run in ``config.data_workers`` processes and
    the result does not depend on how many. The particle filter is single-threaded numpy, so on 2 cores the
    minutes saved on data go to training steps; the longest chunks (5-week episodes) are submitted first so
    that neither worker is left with one at the end. Workers are spawned, so a script calling this needs the
    usual ``if __name__ == "__main__":`` guard (``rhythm pretrain`` has it)."""
    chunks = _chunks(config)
    results: dict[int, list[Sequence]] = {}
    workers = min(config.data_workers, len(chunks))
    if workers <= 1:
        for chunk in chunks:
            results[chunk.index] = _chunk_sequences(config, chunk)
            on_chunk(chunk.users)
    else:
        # spawn, not fork: the parent has already initialised torch's thread pools.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            by_size = sorted(chunks, key=lambda c: c.users * c.weeks, reverse=True)
            futures = {pool.submit(_chunk_sequences, config, chunk): chunk for chunk in by_size}
            for future in as_completed(futures):
                results[futures[future].index] = future.result()
                on_chunk(futures[future].users)
    return [sequence for index in range(len(chunks)) for sequence in results[index]]

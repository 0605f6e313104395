"""Recommend: turn a request into a state, a prompt, a decision and a logged, sampled action."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.idempotency import StoredAnswer, run_idempotent
from app.core.races import hold_user
from app.models import Recommendation, User
from app.models.base import meter_row, utcnow
from app.recommend.backends.base import PolicyInput
from app.recommend.decider import PolicyService
from app.recommend.repository import HISTORY_ROW_CAP, RecommendationRepository, SnapshotMeters
from app.recommend.sampling import sample, sampling_distribution
from app.recommend.schemas import MetersSource, MeterValues, RecommendationCreate, RecommendationPublic
from app.recommend.slots import local_slot, window_start, zone
from domain import ACTIONS, DAY_NAMES, METERS, Meter, SlotState
from policy.evidence import EvidenceConfig, combine
from policy.paths import base_model_version
from policy.prompt import RENDERER_VERSION, render_prompt, shown_meters


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def keyed_rng(seed: int, at: datetime, prompt: str) -> np.random.Generator:
    """A generator for one draw, keyed by what the request is about rather than by when it arrived: the same
    seed, moment and prompt (history, slot, meters) always draw the same action."""
    digest = hashlib.sha256(f"{at.isoformat()}\n{prompt}".encode()).digest()
    return np.random.default_rng([seed, *np.frombuffer(digest[:16], dtype=np.uint32).tolist()])


def _confidences(snapshot: SnapshotMeters) -> dict[Meter, float] | None:
    known = {m: c for m, c in zip(METERS, snapshot.confidences, strict=True) if c is not None}
    return known or None


def evidence_config(settings: Settings) -> EvidenceConfig:
    return EvidenceConfig(
        weight=settings.evidence_weight, sharpness=settings.evidence_sharpness, pool=settings.evidence_pool
    )


async def recommend(
    session: AsyncSession, user: User, policy: PolicyService, settings: Settings, data: RecommendationCreate
) -> RecommendationPublic:
    """Recommend an action for ``user`` and log it with its propensity (the caller's transaction commits).

    The history is the user's answered recommendations in a window of whole slot days (``history_days``, or
    ``adapter_history_days`` when their LoRA adapter answers, since the adapter already carries older
    evidence).
    """
    repo = RecommendationRepository(session)
    tz = zone(user.timezone)
    at = data.at or utcnow()
    where = local_slot(at, tz)

    snapshot: SnapshotMeters | None = None
    if data.meters is not None:
        meters, source = data.meters.to_domain(), MetersSource.REQUEST
        stored: tuple[float | None, ...] = meters.as_tuple()
    elif (snapshot := await repo.latest_meters(user.id, at)) is not None:
        # Missing meters are stored as NULL on the row; the one renderer decides how the model sees them.
        stored, source = snapshot.values, MetersSource.SNAPSHOT
        meters = shown_meters(stored)
    else:
        # Nothing known: every meter is stored NULL (missing), as a snapshot's gaps are, and shown as the
        # renderer shows a missing meter. Storing the neutral 0.50 would make a re-rendered row claim values.
        stored, source = (None,) * len(METERS), MetersSource.NEUTRAL
        meters = shown_meters(stored)

    adapter = (
        await repo.active_adapter(user.id, base_model_version(settings.model_dir))
        if policy.supports_adapters
        else None
    )
    days = settings.adapter_history_days if adapter is not None else settings.history_days
    history = await repo.history(user.id, window_start(where, days, tz), at, HISTORY_ROW_CAP)
    current = SlotState(where.weekday, where.slot, meters)
    prompt = render_prompt(history, current, window_days=days)

    decision = await policy.decide(
        PolicyInput(
            prompt,
            history,
            current,
            adapter=adapter.name if adapter is not None else None,
            adapter_uri=adapter.uri if adapter is not None else None,
        )
    )
    # The person's own answers, combined once here for every backend (policy.evidence): the model alone does
    # not keep learning people unlike the simulator's.
    config = evidence_config(settings)
    evidence_log: dict[str, Any] | None = None
    combined = decision.probabilities
    if config.enabled:
        # With an adapter too: it learnt the answers of its training rows, yet counting them again measured
        # better than leaving them out (docs/finetune.md, "Which answers an adapter is combined with").
        since = at - timedelta(days=settings.evidence_days)
        evidence = await repo.evidence(user.id, since, at)
        mixed = combine(decision.probabilities, evidence, where.weekday, int(where.slot), config)
        combined, evidence_log = mixed.probabilities, {**mixed.log(config), "since": since.isoformat()}
    probs = sampling_distribution(combined, data.exclude, settings.temperature, settings.exploration_floor)
    rng = policy.rng if settings.sampling_seed is None else keyed_rng(settings.sampling_seed, at, prompt)
    chosen = sample(probs, rng)
    probabilities = [float(p) for p in probs]

    adapter_id = adapter.id if adapter is not None and decision.adapter is not None else None
    if adapter_id is not None:
        # Two references the user's deletion cascades through (user, adapter): lock the user row first so the
        # foreign-key checks cannot hold the adapter while waiting for the user (app.core.races).
        await hold_user(session, user.id)
    recommendation = await repo.add(
        Recommendation(
            user_id=user.id,
            at=at,
            day=where.weekday,
            slot=int(where.slot),
            **meter_row(stored),
            neutral_meters=source is MetersSource.NEUTRAL,
            action=ACTIONS[chosen],
            probabilities=probabilities,
            propensity=probabilities[chosen],
            temperature=settings.temperature,
            model=decision.model,
            adapter=decision.adapter,
            adapter_id=adapter_id,
            backend=decision.backend,
            prompt_hash=prompt_hash(prompt),
            renderer_version=RENDERER_VERSION,
            belief=decision.belief,
            model_probabilities=[float(p) for p in decision.probabilities],
            exploration_floor=settings.exploration_floor,
            evidence=evidence_log,
        )
    )
    policy.metrics.recommendations.labels(decision.backend).inc()
    return RecommendationPublic(
        recommendation_id=recommendation.id,
        action=ACTIONS[chosen],
        probabilities=dict(zip(ACTIONS, probabilities, strict=True)),
        propensity=probabilities[chosen],
        at=at,
        date=where.date,
        day=DAY_NAMES[where.weekday],
        slot=where.slot.label,
        meters=MeterValues.from_domain(meters),
        meters_source=source,
        meters_taken_at=snapshot.taken_at if snapshot is not None else None,
        meter_confidences=_confidences(snapshot) if snapshot is not None else None,
        missing_meters=[m for m, v in zip(METERS, stored, strict=True) if v is None],
        backend=decision.backend,
        model=decision.model,
        adapter=decision.adapter,
        belief=decision.belief,
        temperature=settings.temperature,
    )


async def recommend_once(
    session: AsyncSession,
    user: User,
    policy: PolicyService,
    settings: Settings,
    data: RecommendationCreate,
    *,
    key: str,
    method: str,
    path: str,
) -> StoredAnswer:
    """:func:`recommend` under an ``Idempotency-Key``: a client that retries after a lost answer gets the
    recommendation it was first given, instead of a second sampled and logged one (which would stay unanswered
    in the user's history and the fine-tune's data, beside the one the person actually saw)."""

    async def work() -> tuple[int, Any]:
        answer = await recommend(session, user, policy, settings, data)
        return 200, answer.model_dump(mode="json")

    return await run_idempotent(
        session,
        scope=user.id,
        key=key,
        method=method,
        path=path,
        body=data.model_dump(mode="json"),
        ttl=settings.idempotency_ttl,
        work=work,
    )

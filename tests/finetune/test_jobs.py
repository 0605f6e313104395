"""Fine-tune jobs end to end in-process: eligibility, the prompt-hash check, training, the gate, one job per
user and ISO week, and that a finished job cannot run again."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import task_session
from app.core.jobs import pending_jobs
from app.core.tasks import RUN_FINETUNE_JOB
from app.finetune import service
from app.finetune.repository import JobStore
from app.models import Adapter, AdapterStatus, FinetuneJob, FinetuneStatus, MeterSnapshot, Recommendation
from app.models.base import utcnow
from tests.finetune.conftest import LIKED, log_history
from tests.support import CreateUser, make_settings


@pytest.fixture
def ft_settings(settings: Settings, tmp_path: Path) -> Settings:
    return make_settings(
        settings.database_url,
        adapter_dir=tmp_path / "adapters",
        finetune_epochs=2,
        finetune_min_answered=30,
        finetune_min_history_days=21,
        finetune_gate_min_ess=5.0,
    )


def _request(settings: Settings, user_id: object) -> FinetuneJob:
    with task_session(settings.sync_database_url) as session:
        job = service.request_job(session, settings, user_id, utcnow())  # type: ignore[arg-type]
        assert [j.name for j in pending_jobs(session)] in ([RUN_FINETUNE_JOB], [])
        return job


async def test_a_job_trains_checks_prompts_gates_and_runs_once(
    ft_settings: Settings, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, _ = await create_user()
    rows = await log_history(db_session, user_id, days=24)
    job = _request(ft_settings, user_id)
    assert _request(ft_settings, user_id).id == job.id  # one job per user and week

    outcome = await asyncio.to_thread(service.run_job, ft_settings, job.id)
    assert outcome.status == "succeeded"

    with task_session(ft_settings.sync_database_url) as session:
        done = session.get(FinetuneJob, job.id)
        assert done is not None and done.status is FinetuneStatus.SUCCEEDED and done.attempt == 1
        assert done.metrics is not None and done.gate is not None
        # Every row was logged under the current renderer: every re-rendered prompt matched its hash.
        assert done.metrics["prompts_checked"] == rows
        assert done.metrics["prompts_mismatched"] == 0
        assert done.metrics["examples"] + done.metrics["holdout_examples"] == rows
        gate = done.gate
        assert gate["candidate"]["ess"] > 0 and gate["current"]["n"] == done.metrics["holdout_examples"]
        assert gate["decision"] in {"promoted", "promoted_pooled", "held_back", "not_enough_evidence"}
        adapter = session.get(Adapter, done.adapter_id)
        assert adapter is not None
        assert await asyncio.to_thread(Path(adapter.uri, "adapter_config.json").is_file)
        # The training rows' span: the held-out days are after it.
        logged = JobStore(session).logged_rows(user_id)
        assert adapter.trained_from == logged[0].at
        assert adapter.trained_to is not None
        holdout = [row for row in logged if row.at > adapter.trained_to]
        assert len(holdout) == done.metrics["holdout_examples"]
        assert logged[-1].at - adapter.trained_to == timedelta(days=ft_settings.finetune_holdout_days)
        expected = AdapterStatus.ACTIVE if gate["decision"].startswith("promoted") else AdapterStatus.READY
        assert adapter.status is expected

    # A second delivery of the same message finds nothing to do.
    again = await asyncio.to_thread(service.run_job, ft_settings, job.id)
    assert again.status == "not_claimed"


async def test_too_little_history_is_skipped_with_the_reason(
    ft_settings: Settings, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, _ = await create_user()
    await log_history(db_session, user_id, days=10)
    job = _request(ft_settings, user_id)
    outcome = await asyncio.to_thread(service.run_job, ft_settings, job.id)
    assert outcome.status == "skipped"
    with task_session(ft_settings.sync_database_url) as session:
        done = session.get(FinetuneJob, job.id)
        assert done is not None and done.status is FinetuneStatus.SKIPPED
        assert done.reason is not None and "answered" in done.reason


async def test_a_row_whose_prompt_does_not_match_its_hash_is_left_out(
    ft_settings: Settings, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, _ = await create_user()
    await log_history(db_session, user_id, days=22)
    with task_session(ft_settings.sync_database_url) as session:
        first = session.scalars(
            select(Recommendation.id).where(Recommendation.user_id == user_id).order_by(Recommendation.at)
        ).first()
        session.execute(update(Recommendation).where(Recommendation.id == first).values(prompt_hash="0" * 64))
        rows = JobStore(session).logged_rows(user_id)
    data = service.build_dataset(rows, "UTC", ft_settings)
    assert data.checked == len(rows) and data.mismatched == 1
    assert len(data.train) + len(data.holdout) == len(rows) - 1
    # The adapter reads the short window: no prompt shows more than 7 days x 2 answers.
    assert max(example.prompt.count("→ user:") for example in data.train) <= 14


async def test_a_person_whose_snapshots_lack_meters_is_fine_tuned_on_the_prompts_they_were_served(
    ft_settings: Settings, client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    """A wearable without a calendar: progress and connection are missing in every snapshot, so every logged
    row stores them as NULL. The job reads those rows as the service rendered them (it used to raise)."""
    user_id, headers = await create_user()
    rng = np.random.default_rng(4)
    first_day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=22)
    served = 0
    for day in range(22):
        day_start = first_day + timedelta(days=day)
        vitality, cognition, serenity = np.round(rng.uniform(0.2, 0.9, 3), 2).tolist()
        db_session.add(
            MeterSnapshot(
                user_id=user_id,
                taken_at=day_start + timedelta(hours=5),
                vitality=vitality,
                cognition=cognition,
                serenity=serenity,
                source="bridge",
            )
        )
        await db_session.commit()
        for hour in (8, 13, 18, 23):
            at = (day_start + timedelta(hours=hour)).isoformat()
            response = await client.post("/v1/recommend", json={"at": at}, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["meters_source"] == "snapshot"
            assert body["missing_meters"] == ["progress", "connection"]
            answer = "accepted" if body["action"] == LIKED.value else "ignored"
            feedback = {"recommendation_id": body["recommendation_id"], "response": answer}
            assert (await client.post("/v1/feedback", json=feedback, headers=headers)).status_code in (
                200,
                201,
            )
            served += 1

    with task_session(ft_settings.sync_database_url) as session:
        rows = JobStore(session).logged_rows(user_id)
    assert len(rows) == served
    data = service.build_dataset(rows, "UTC", ft_settings)
    assert data.checked == served and data.mismatched == 0
    job = _request(ft_settings, user_id)
    outcome = await asyncio.to_thread(service.run_job, ft_settings, job.id)
    assert outcome.status == "succeeded"

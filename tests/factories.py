"""Row factories: one realistic row in every user-owned table, for deletion, export and isolation tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import ACCESS_TOKEN_CONTEXT, REFRESH_TOKEN_CONTEXT, TokenCipher
from app.models import (
    Adapter,
    AdapterStatus,
    CalendarCorrection,
    CalendarEvent,
    DeviceConnection,
    Feedback,
    FinetuneJob,
    GoogleCalendar,
    GoogleChannel,
    GoogleTask,
    IdempotencyKey,
    MeterRecompute,
    MeterSnapshot,
    OAuthState,
    Recommendation,
    SignalReading,
    WebhookEvent,
)
from domain import ACTIONS, Action, Response
from policy.paths import base_model_version


async def seed_user_rows(session: AsyncSession, user_id: uuid.UUID, cipher: TokenCipher) -> None:
    """Insert at least one row for ``user_id`` in every user-owned table (api_tokens come from the API)."""
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    event = WebhookEvent(
        source="oura",
        external_id=f"evt-{tag}",
        user_id=user_id,
        raw_body=b'{"type": "sleep", "hours": 7.5}',
        headers={"content-type": "application/json"},
    )
    adapter = Adapter(
        user_id=user_id, name=f"user-{tag}-v1", version=1, base_model="rhythm-policy", uri=f"file:///a/{tag}"
    )
    recommendation = Recommendation(
        user_id=user_id,
        day=now.weekday(),
        slot=1,
        vitality=0.7,
        cognition=0.6,
        progress=0.5,
        serenity=0.4,
        connection=0.3,
        action=Action.DEEP_WORK,
        probabilities=[1 / len(ACTIONS)] * len(ACTIONS),
        propensity=0.1,
        temperature=1.0,
        model="rhythm-policy",
        backend="local",
        adapter_id=None,
    )
    session.add_all([event, adapter, recommendation])
    await session.flush()
    connection = DeviceConnection(
        user_id=user_id,
        provider="oura",
        external_user_id=f"ext-{tag}",
        access_token_encrypted=cipher.encrypt("access-" + tag, context=ACCESS_TOKEN_CONTEXT),
        refresh_token_encrypted=cipher.encrypt("refresh-" + tag, context=REFRESH_TOKEN_CONTEXT),
    )
    session.add(connection)
    await session.flush()
    calendar = GoogleCalendar(
        user_id=user_id,
        connection_id=connection.id,
        calendar_id=f"{tag}@example.com",
        sync_token="sync-" + tag,
    )
    session.add(calendar)
    await session.flush()
    session.add_all(
        [
            GoogleChannel(
                user_id=user_id,
                calendar_row_id=calendar.id,
                channel_id=str(uuid.uuid4()),
                resource_id=f"res-{tag}",
                token_hash="f" * 64,
                expiration=now + timedelta(days=7),
            ),
            CalendarCorrection(user_id=user_id, kind="title", key="standup", action=Action.ADMIN_WORK),
            GoogleTask(
                user_id=user_id,
                connection_id=connection.id,
                tasklist_id="list-1",
                task_id=f"task-{tag}",
                title="File taxes",
                status="needsAction",
                updated=now,
            ),
            SignalReading(
                user_id=user_id,
                source="oura",
                kind="sleep_hours",
                value=7.5,
                observed_at=now,
                webhook_event_id=event.id,
            ),
            MeterSnapshot(
                user_id=user_id,
                taken_at=now,
                vitality=0.7,
                cognition=0.6,
                progress=0.5,
                serenity=0.4,
                connection=0.3,
                source="bridge",
                engine_version="meters/1",
                provenance={"engine": "meters/1", "missing": []},
                vitality_confidence=0.9,
                cognition_confidence=0.5,
                progress_confidence=0.0,
                serenity_confidence=0.7,
                connection_confidence=0.2,
            ),
            MeterRecompute(user_id=user_id, requested_at=now, computed_at=now),
            CalendarEvent(
                user_id=user_id,
                source="google",
                external_id=f"cal-{tag}",
                title="Standup",
                starts_at=now,
                ends_at=now + timedelta(minutes=15),
                action=Action.ADMIN_WORK,
            ),
            FinetuneJob(user_id=user_id, iso_week="2026-W49", adapter_id=adapter.id, adapter_uri=adapter.uri),
            Feedback(
                user_id=user_id,
                recommendation_id=recommendation.id,
                response=Response.ACCEPTED,
                reward=Response.ACCEPTED.reward,
            ),
            IdempotencyKey(
                user_id=user_id,
                key=f"key-{tag}",
                method="POST",
                path="/v1/recommend",
                request_hash="0" * 64,
                expires_at=now + timedelta(hours=24),
            ),
            OAuthState(
                user_id=user_id,
                provider="google",
                state_digest=uuid.uuid4().hex + tag,
                code_verifier_encrypted=cipher.encrypt("verifier-" + tag, context="oauth_states.verifier"),
                expires_at=now + timedelta(minutes=10),
            ),
        ]
    )
    await session.flush()


async def deploy_adapter(session: AsyncSession, user_id: uuid.UUID, name: str) -> None:
    """Record an active LoRA adapter for ``user_id`` (as the weekly fine-tune would) and commit it."""
    session.add(
        Adapter(
            user_id=user_id,
            name=name,
            version=1,
            base_model=base_model_version(),
            uri=f"file:///adapters/{name}",
            status=AdapterStatus.ACTIVE,
        )
    )
    await session.commit()

"""The fine-tune ops API and what it changes for recommendations on the local backend: a rejected adapter
is not deployed, a deployed one answers (merged by peft, in the local backend), rollback restores the
previous adapter and then the base model."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.tasks import PURGE_USER_ADAPTERS
from app.finetune import service
from app.models import Adapter, AdapterStatus, Recommendation
from policy.finetune import Example, FinetuneConfig, finetune
from policy.paths import base_model_version
from policy.prompt import render_prompt
from tests.finetune.conftest import log_history
from tests.policy.conftest import make_history
from tests.support import admin_headers_for, app_client, create_user_via_api, make_settings, running_app
from tests.webhooks.terra import purge_broker, queued

pytestmark = pytest.mark.usefixtures("clean_database")

METERS = {"vitality": 0.7, "cognition": 0.6, "progress": 0.4, "serenity": 0.5, "connection": 0.3}


@pytest.fixture
def ft_settings(settings: Settings, tmp_path: Path) -> Settings:
    # Own broker key prefix: the jobs this API sends never reach another session's workers.
    return make_settings(
        settings.database_url,
        admin_token=settings.admin_token.get_secret_value(),
        broker_key_prefix=f"rhythm-test-{secrets.token_hex(6)}:",
        adapter_dir=tmp_path / "adapters",
        finetune_epochs=1,
        finetune_min_answered=30,
    )


@pytest.fixture
async def client(ft_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    try:
        async with running_app(ft_settings) as app, app_client(app) as http:
            yield http
    finally:
        purge_broker(ft_settings)


def _quick_adapter(directory: Path, liked: int, seed: int) -> Path:
    """A small real fine-tune (a user who accepts action ``liked``), enough to move the distribution."""
    examples = []
    for i in range(8):
        history, current = make_history(3 + i, seed=seed + i)
        prompt = render_prompt(history, current, window_days=7)
        examples.append(Example(prompt, prompt, liked if i % 2 else (liked + 3) % 10, i % 2 == 1, 0.5))
    finetune(examples, directory, FinetuneConfig(epochs=2, batch_size=8, lr=2e-2, seed=seed))
    return directory


async def _recommend(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, object]:
    response = await client.post("/v1/recommend", json={"meters": METERS}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_a_rejected_adapter_is_not_deployed(
    ft_settings: Settings, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = admin_headers_for(ft_settings)
    user_id, headers = await create_user_via_api(client, admin)
    await log_history(db_session, user_id, days=22)

    queued = await client.post("/v1/ops/finetune-jobs", json={"user_id": str(user_id)}, headers=admin)
    assert queued.status_code == 202, queued.text
    (job_id,) = queued.json()["job_ids"]
    # The gate demands more effective samples than any one user (or the pool) has: not enough evidence.
    strict = ft_settings.model_copy(update={"finetune_gate_min_ess": 1e6})
    outcome = await asyncio.to_thread(service.run_job, strict, uuid.UUID(job_id))
    assert outcome.status == "succeeded" and outcome.adapter is None

    job = (await client.get(f"/v1/ops/finetune-jobs/{job_id}", headers=admin)).json()
    assert job["status"] == "succeeded" and job["gate"]["decision"] == "not_enough_evidence"
    assert job["gate"]["pooled"]["ess"] < 1e6 and job["reason"] == "gate: not_enough_evidence"
    adapters = (await client.get(f"/v1/ops/users/{user_id}/adapters", headers=admin)).json()
    assert adapters["active"] is None
    assert [a["status"] for a in adapters["items"]] == ["ready"]
    assert (await _recommend(client, headers))["adapter"] is None

    listed = await client.get("/v1/ops/finetune-jobs", params={"user_id": str(user_id)}, headers=admin)
    assert [item["id"] for item in listed.json()["items"]] == [job_id]
    # Same week, same user: the same job, not a second one.
    again = await client.post("/v1/ops/finetune-jobs", json={"user_id": str(user_id)}, headers=admin)
    assert again.json()["job_ids"] == [job_id]


async def test_rollback_restores_the_previous_adapter_then_the_base(
    ft_settings: Settings, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = admin_headers_for(ft_settings)
    user_id, headers = await create_user_via_api(client, admin)
    base = await _recommend(client, headers)
    assert base["adapter"] is None

    root = Path(ft_settings.adapter_dir) / f"u{user_id.hex}"
    names = [f"u{user_id.hex}-w202648", f"u{user_id.hex}-w202649"]
    for version, (name, status) in enumerate(
        zip(names, [AdapterStatus.RETIRED, AdapterStatus.ACTIVE], strict=True)
    ):
        path = await asyncio.to_thread(_quick_adapter, root / name[-7:], liked=2 + 4 * version, seed=version)
        db_session.add(
            Adapter(
                user_id=user_id,
                name=name,
                version=202648 + version,
                base_model=base_model_version(),
                uri=str(path),
                status=status,
            )
        )
    await db_session.commit()

    served = await _recommend(client, headers)
    assert served["adapter"] == names[1]
    assert served["probabilities"] != base["probabilities"]

    user_token_rollback = await client.post(f"/v1/ops/users/{user_id}/adapter/rollback", headers=headers)
    assert user_token_rollback.status_code == 403
    first = await client.post(f"/v1/ops/users/{user_id}/adapter/rollback", headers=admin)
    assert first.status_code == 200, first.text
    assert (first.json()["active"]["name"], first.json()["retired"]["name"]) == (names[0], names[1])
    assert (await _recommend(client, headers))["adapter"] == names[0]

    second = await client.post(f"/v1/ops/users/{user_id}/adapter/rollback", headers=admin)
    assert second.json()["active"] is None
    assert (await _recommend(client, headers))["adapter"] is None
    third = await client.post(f"/v1/ops/users/{user_id}/adapter/rollback", headers=admin)
    assert third.status_code == 409 and third.json()["error"]["code"] == "no_active_adapter"


async def test_a_retried_rollback_with_its_key_goes_back_only_once(
    ft_settings: Settings, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = admin_headers_for(ft_settings)
    user_id, _ = await create_user_via_api(client, admin)
    names = [f"u{user_id.hex}-w20264{week}" for week in (7, 8, 9)]
    statuses = [AdapterStatus.RETIRED, AdapterStatus.RETIRED, AdapterStatus.ACTIVE]
    for version, (name, status) in enumerate(zip(names, statuses, strict=True)):
        # Rows only: on the local backend a rollback moves the pointer and loads nothing.
        db_session.add(
            Adapter(
                user_id=user_id,
                name=name,
                version=202647 + version,
                base_model=base_model_version(),
                uri=f"/nonexistent/{name}",
                status=status,
            )
        )
    await db_session.commit()
    url = f"/v1/ops/users/{user_id}/adapter/rollback"
    keyed = {**admin, "Idempotency-Key": str(uuid.uuid4())}

    first = await client.post(url, headers=keyed)
    assert first.status_code == 200, first.text
    assert (first.json()["active"]["name"], first.json()["retired"]["name"]) == (names[1], names[2])
    # The answer was lost; the operator retries: the same answer, and still one step back.
    retry = await client.post(url, headers=keyed)
    assert retry.status_code == 200 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    adapters = (await client.get(f"/v1/ops/users/{user_id}/adapters", headers=admin)).json()
    assert adapters["active"]["name"] == names[1]
    # A new rollback (no key, or a new one) goes one more version back, as before.
    again = await client.post(url, headers={**admin, "Idempotency-Key": str(uuid.uuid4())})
    assert again.status_code == 200 and again.json()["active"]["name"] == names[0]
    # An unknown user is a 404 with a key too, and nothing is stored for it.
    unknown = await client.post(f"/v1/ops/users/{uuid.uuid4()}/adapter/rollback", headers=keyed)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


async def test_ops_routes_refuse_bad_input_and_unknown_ids(
    ft_settings: Settings, client: httpx.AsyncClient
) -> None:
    admin = admin_headers_for(ft_settings)
    both = await client.post(
        "/v1/ops/finetune-jobs", json={"user_id": str(uuid.uuid4()), "all_eligible": True}, headers=admin
    )
    assert both.status_code == 422 and both.json()["error"]["code"] == "validation_error"
    # all_eligible is the JSON boolean true: 1, 1.0 and "true" are not read as it (issue 10, strict types).
    for lax in (1, 1.0, "true"):
        refused = await client.post("/v1/ops/finetune-jobs", json={"all_eligible": lax}, headers=admin)
        assert refused.status_code == 422, (lax, refused.text)
        assert refused.json()["error"]["details"][0]["loc"] == ["body", "all_eligible"]
    unknown = await client.post("/v1/ops/finetune-jobs", json={"user_id": str(uuid.uuid4())}, headers=admin)
    assert unknown.status_code == 404
    assert (await client.get(f"/v1/ops/finetune-jobs/{uuid.uuid4()}", headers=admin)).status_code == 404
    bad_cursor = await client.get("/v1/ops/finetune-jobs", params={"cursor": "x"}, headers=admin)
    assert bad_cursor.status_code == 422
    assert (
        await client.post("/v1/ops/finetune-jobs", json={"all_eligible": True}, headers=admin)
    ).json() == {"job_ids": []}


async def test_deleting_a_user_purges_their_adapter_files(
    ft_settings: Settings, client: httpx.AsyncClient
) -> None:
    admin = admin_headers_for(ft_settings)
    user_id, _ = await create_user_via_api(client, admin)
    folder = Path(ft_settings.adapter_dir) / f"u{user_id.hex}" / "w202649"
    await asyncio.to_thread(folder.mkdir, parents=True)
    await asyncio.to_thread((folder / "adapter_model.safetensors").write_bytes, b"weights")

    assert (await client.delete(f"/v1/users/{user_id}", headers=admin)).status_code == 204
    sent = [(m["task"], m["argsrepr"]) for m in queued(ft_settings, "default")]
    assert sent == [(PURGE_USER_ADAPTERS, repr([str(user_id)]))]
    # What the worker runs for that message.
    assert await asyncio.to_thread(service.purge_user_adapters, ft_settings, user_id) == 1
    assert not await asyncio.to_thread(folder.parent.exists)
    assert await asyncio.to_thread(service.purge_user_adapters, ft_settings, user_id) == 0


async def test_an_adapter_of_another_base_model_is_not_served(
    ft_settings: Settings, client: httpx.AsyncClient, db_session: AsyncSession, tmp_path: Path
) -> None:
    admin = admin_headers_for(ft_settings)
    user_id, headers = await create_user_via_api(client, admin)
    path = await asyncio.to_thread(_quick_adapter, tmp_path / "old-base", liked=2, seed=0)
    db_session.add(
        Adapter(
            user_id=user_id,
            name=f"u{user_id.hex}-w202601",
            version=202601,
            base_model="rhythm-tiny@000000000000",  # the shipped base has changed since
            uri=str(path),
            status=AdapterStatus.ACTIVE,
        )
    )
    await db_session.commit()
    assert (await _recommend(client, headers))["adapter"] is None
    adapters = (await client.get(f"/v1/ops/users/{user_id}/adapters", headers=admin)).json()
    assert adapters["active"] is None and len(adapters["items"]) == 1


async def test_an_adapter_is_combined_with_all_the_answers_like_the_base(
    ft_settings: Settings, client: httpx.AsyncClient, db_session: AsyncSession, tmp_path: Path
) -> None:
    """The adapter learnt the answers of its training rows (up to ``trained_to``), yet the combination counts
    them again, as for the base: measured better than leaving them out (docs/finetune.md)."""
    admin = admin_headers_for(ft_settings)
    user_id, headers = await create_user_via_api(client, admin)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    cut = now - timedelta(days=3, hours=12)
    for days_ago in range(6, 0, -1):  # 3 answers before the cut, 3 after
        at = now - timedelta(days=days_ago)
        body = (
            await client.post("/v1/recommend", json={"at": at.isoformat(), "meters": METERS}, headers=headers)
        ).json()
        answer = {"recommendation_id": body["recommendation_id"], "response": "ignored"}
        assert (await client.post("/v1/feedback", json=answer, headers=headers)).status_code in (200, 201)

    path = await asyncio.to_thread(_quick_adapter, tmp_path / "w", liked=2, seed=0)
    adapter = Adapter(
        user_id=user_id,
        name=f"u{user_id.hex}-w202649",
        version=202649,
        base_model=base_model_version(),
        uri=str(path),
        status=AdapterStatus.ACTIVE,
        trained_from=now - timedelta(days=30),
        trained_to=cut,
    )
    db_session.add(adapter)
    await db_session.commit()

    served = await _recommend(client, headers)
    assert served["adapter"] == adapter.name
    row = await db_session.get(Recommendation, uuid.UUID(str(served["recommendation_id"])))
    assert row is not None and row.evidence is not None
    assert row.evidence["answers"] == 6
    assert datetime.fromisoformat(row.evidence["since"]) < now - timedelta(days=6)

    rolled = await client.post(f"/v1/ops/users/{user_id}/adapter/rollback", headers=admin)
    assert rolled.status_code == 200, rolled.text
    base = await _recommend(client, headers)
    assert base["adapter"] is None
    base_row = await db_session.get(Recommendation, uuid.UUID(str(base["recommendation_id"])))
    assert base_row is not None and base_row.evidence is not None and base_row.evidence["answers"] == 6

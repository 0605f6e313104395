"""Queues, routing and limits are defined once (``app.core.tasks``); nothing reads settings at import; ``app``
never imports ``workers`` and ``bridges`` never imports ``app``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery

from app.core.config import Settings
from app.core.tasks import (
    FINETUNE_TIME_LIMIT,
    PROCESS_WEBHOOK_EVENT,
    PURGE_EXPIRED_IDEMPOTENCY_KEYS,
    SHORT_TIME_LIMIT,
    TaskQueue,
    create_celery,
)
from workers.celery_app import TASK_MODULES

ROOT = Path(__file__).resolve().parents[2]


def _queue_of(celery: Celery, task_name: str) -> str:
    route = celery.amqp.router.route({}, task_name, args=(), kwargs={})
    return str(route["queue"].name)


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        (PROCESS_WEBHOOK_EVENT, "ingest"),
        ("rhythm.ingest.apple_health_upload", "ingest"),
        ("rhythm.calendar.renew_channels", "calendar"),
        ("rhythm.finetune.train_adapter", "finetune"),
        (PURGE_EXPIRED_IDEMPOTENCY_KEYS, "default"),
    ],
)
def test_tasks_are_routed_to_their_queue_by_name(settings: Settings, task_name: str, queue: str) -> None:
    assert _queue_of(create_celery(settings), task_name) == queue


def test_each_queue_has_its_own_exchange_and_key(settings: Settings) -> None:
    # Queues sharing one exchange and routing key would each get a copy of every message.
    queues = create_celery(settings).conf.task_queues
    assert sorted(q.name for q in queues) == sorted(q.value for q in TaskQueue)
    assert len({(q.exchange.name, q.routing_key) for q in queues}) == len(queues)


def test_finetune_tasks_get_long_limits_and_early_ack(settings: Settings) -> None:
    celery = create_celery(settings)

    @celery.task(name="rhythm.finetune.probe", shared=False)  # type: ignore[untyped-decorator]
    def probe() -> None: ...

    @celery.task(name="rhythm.ingest.probe", shared=False)  # type: ignore[untyped-decorator]
    def short() -> None: ...

    celery.finalize()
    long_task, short_task = celery.tasks["rhythm.finetune.probe"], celery.tasks["rhythm.ingest.probe"]
    assert long_task.time_limit == FINETUNE_TIME_LIMIT and long_task.acks_late is False
    assert long_task.soft_time_limit < long_task.time_limit
    assert short_task.time_limit == SHORT_TIME_LIMIT
    assert short_task.acks_late is True


def test_importing_the_celery_modules_reads_no_settings() -> None:
    # An invalid database URL fails Settings(); importing must not build them.
    env = {**os.environ, "RHYTHM_DATABASE_URL": "not-a-database", "PYTHONPATH": str(ROOT)}
    # Every worker module (the app's task list, not a hand-kept copy) and the API's app factory.
    modules = [
        "app.core.tasks",
        "app.core.jobs",
        "workers.celery_app",
        *TASK_MODULES,
        "workers.heartbeat",
        "app.main",
    ]
    code = "import " + ", ".join(modules)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


# Which package may import which (app never imports workers; bridges only app.core and app.models) is
# tests/test_architecture.py's job: it parses every import, function-level ones too.

"""The Celery application (``celery -A workers.celery_app worker|beat``).

Broker from ``RHYTHM_BROKER_URL``: Redis in production, kombu's SQLAlchemy transport on SQLite for
``make run``. Settings follow reliability.md §5: short idempotent tasks ack late and go back to the queue if
their worker dies; one message prefetched at a time; every task has a soft and a hard time limit. Long jobs
(fine-tunes) keep their state and lease in the database and use their own queue and limits.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from workers.heartbeat import HEARTBEAT_SCHEDULER  # importing it also connects the worker heartbeat signals

TASK_MODULES = ["workers.maintenance"]


def create_celery(settings: Settings) -> Celery:
    # Task code logs through structlog like the API: same format, JSON in production.
    configure_logging(settings.log_level, json=settings.json_logs)
    celery = Celery("rhythm", broker=settings.broker_url, include=TASK_MODULES)
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        # Tasks write their results to the database; nothing reads Celery results.
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=240,
        task_time_limit=300,
        task_default_queue="rhythm",
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_scheduler=HEARTBEAT_SCHEDULER,
        beat_schedule={
            "purge-expired-idempotency-keys": {
                "task": "rhythm.maintenance.purge_expired_idempotency_keys",
                "schedule": timedelta(hours=1),
            },
        },
    )
    return celery


celery_app = create_celery(get_settings())

"""The worker-side Celery application (``celery -A workers.celery_app worker|beat``).

Built by the same factory as the producers' (``app.core.tasks``: queues, routing, limits, beat schedule) plus
the task modules. ``celery_app`` exists at import but reads the settings only when Celery first needs its
configuration, so importing this module (tests, tooling) reads no environment.

Broker from ``RHYTHM_BROKER_URL``: Redis in production, kombu's SQLAlchemy transport on SQLite for
``make run``. Workers consume every queue: ``-Q ingest,calendar,finetune,default``.
"""

from __future__ import annotations

from celery import Celery

from app.core import tasks
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from workers.heartbeat import HEARTBEAT_SCHEDULER  # importing it also connects the worker heartbeat signals

TASK_MODULES = (
    "workers.maintenance",
    "workers.ingest",
    "workers.connections",
    "workers.calendar",
    "workers.finetune",
)


def create_celery(settings: Settings) -> Celery:
    """A worker-side app for ``settings`` (tests start workers and send tasks with their own settings)."""
    celery = tasks.create_celery(settings, include=TASK_MODULES)
    celery.conf.beat_scheduler = HEARTBEAT_SCHEDULER
    return celery


def _configure_from_environment() -> dict[str, object]:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.json_logs)
    # The heartbeat scheduler lets /readyz see beat's last tick (workers.heartbeat).
    return {**tasks.celery_config(settings), "beat_scheduler": HEARTBEAT_SCHEDULER}


celery_app = Celery("rhythm", include=list(TASK_MODULES))
# Evaluated when the configuration is first read (worker or beat start-up), not at import.
celery_app.add_defaults(_configure_from_environment)

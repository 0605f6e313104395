"""The Celery app's configuration: what beat schedules exists, and the reliability settings hold."""

from __future__ import annotations

from app.core.config import Settings
from workers.celery_app import create_celery


def test_beat_schedules_only_registered_tasks(settings: Settings) -> None:
    celery = create_celery(settings)
    celery.loader.import_default_modules()
    schedule = celery.conf.beat_schedule
    assert schedule, "beat has nothing to do"
    for entry in schedule.values():
        assert entry["task"] in celery.tasks, f"beat schedules unknown task {entry['task']}"


def test_short_tasks_are_acked_late_one_at_a_time_with_limits(settings: Settings) -> None:
    conf = create_celery(settings).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_url == settings.broker_url

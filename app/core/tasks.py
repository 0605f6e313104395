"""The Celery application factory, its queues and routing: defined once, used by producers and workers.

Layering: ``workers`` → ``app``. Producers in ``app/`` enqueue by task *name* through :func:`celery_for`
(they never import ``workers``); ``workers.celery_app`` builds the worker-side app from the same factory and
adds the task modules. Nothing here reads settings at import time.

Queues (later issues add tasks, not queues); a task is routed by the prefix of its name:

* ``ingest`` — ``rhythm.ingest.*``: webhook deliveries, uploads. Short and idempotent: late ack.
* ``calendar`` — ``rhythm.calendar.*``: calendar sync, push-channel renewal. Short and idempotent: late ack.
* ``finetune`` — ``rhythm.finetune.*``: long jobs with their own limits (hours, not minutes) and *early* ack:
  with Redis and late ack, a job running past the visibility timeout would be delivered again while it runs
  (reliability.md §5); the job keeps its state and lease in the database instead.
* ``default`` — everything else, e.g. ``rhythm.maintenance.*`` housekeeping from beat.

Settings follow reliability.md §5: one message prefetched at a time, a soft and a hard time limit on every
task, late ack with ``task_reject_on_worker_lost`` for the short idempotent ones.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import timedelta
from functools import lru_cache
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from kombu.entity import Exchange, Queue

from app.core.config import Settings, get_settings
from app.core.logging import configure_logging


class TaskQueue(enum.StrEnum):
    INGEST = "ingest"
    CALENDAR = "calendar"
    FINETUNE = "finetune"
    DEFAULT = "default"


# Task name prefix → queue. Glob patterns, so a new task lands on its queue by being named, not configured.
TASK_ROUTES: dict[str, dict[str, str]] = {
    "rhythm.ingest.*": {"queue": TaskQueue.INGEST.value},
    "rhythm.calendar.*": {"queue": TaskQueue.CALENDAR.value},
    "rhythm.finetune.*": {"queue": TaskQueue.FINETUNE.value},
}

# Names producers enqueue by (``send_task``); the worker modules register functions under the same names.
PROCESS_WEBHOOK_EVENT = "rhythm.ingest.process_webhook_event"
PURGE_EXPIRED_IDEMPOTENCY_KEYS = "rhythm.maintenance.purge_expired_idempotency_keys"
REQUEUE_STALE_WEBHOOK_EVENTS = "rhythm.maintenance.requeue_stale_webhook_events"
# Provider connections (bridges.oauth): enqueued by name after the commit that links an account, with
# ``args=[str(connection.id)]``; the wearable and calendar bridges implement them.
BACKFILL_CONNECTION = "rhythm.ingest.backfill_connection"
CALENDAR_SETUP_CONNECTION = "rhythm.calendar.setup_connection"
# A deleted connection's grant given back at the provider (one pending revocation; retried from beat).
REVOKE_CONNECTION = "rhythm.maintenance.revoke_connection"
DRAIN_PENDING_REVOCATIONS = "rhythm.maintenance.drain_pending_revocations"
# Wearables (app.wearables): the daily reconcile enqueues one BACKFILL_CONNECTION (a short window) per
# connection; Oura's app-wide subscriptions are created and renewed daily.
RECONCILE_WEARABLES = "rhythm.ingest.reconcile_wearables"
ENSURE_OURA_SUBSCRIPTIONS = "rhythm.ingest.ensure_oura_subscriptions"
# A user's meters from their readings (coalesced per user: ``app.meters.service.request_recompute``).
RECOMPUTE_METERS = "rhythm.ingest.recompute_meters"
REFRESH_METERS = "rhythm.maintenance.refresh_meters"
# Calendar syncs pending with a free lease past their debounce (a killed worker's message; a lost one).
RESEND_STUCK_CALENDAR_SYNCS = "rhythm.maintenance.resend_stuck_calendar_syncs"
CALENDAR_SYNC = "rhythm.calendar.sync_calendar"
CALENDAR_RENEW_CHANNELS = "rhythm.calendar.renew_channels"
CALENDAR_PULL_TASKS = "rhythm.calendar.pull_tasks"
# Fine-tunes: the job on ``finetune``; the cheap sweeps on ``default``, so a long job never delays them.
RUN_FINETUNE_JOB = "rhythm.finetune.run_job"
SCHEDULE_WEEKLY_FINETUNES = "rhythm.maintenance.schedule_weekly_finetunes"
REQUEUE_STALE_FINETUNE_JOBS = "rhythm.maintenance.requeue_stale_finetune_jobs"
RECONCILE_ADAPTERS = "rhythm.maintenance.reconcile_adapters"
PURGE_USER_ADAPTERS = "rhythm.maintenance.purge_user_adapters"

SHORT_SOFT_TIME_LIMIT = 240
SHORT_TIME_LIMIT = 300
FINETUNE_SOFT_TIME_LIMIT = 4 * 3600
FINETUNE_TIME_LIMIT = FINETUNE_SOFT_TIME_LIMIT + 600


class FinetuneLimits:
    """Celery annotation: the long-job limits for every ``rhythm.finetune.*`` task, however it is declared."""

    def annotate(self, task: Task) -> dict[str, Any] | None:
        if not (task.name or "").startswith("rhythm.finetune."):
            return None
        return {
            "acks_late": False,
            "reject_on_worker_lost": False,
            "soft_time_limit": FINETUNE_SOFT_TIME_LIMIT,
            "time_limit": FINETUNE_TIME_LIMIT,
        }


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings`` (broker, queues, routing, limits, beat schedule)."""
    transport_options: dict[str, Any] = {}
    if settings.broker_key_prefix:
        # Every Redis key of the broker gets the prefix: deployments (or test sessions) sharing one Redis
        # database never consume each other's messages.
        transport_options["global_keyprefix"] = settings.broker_key_prefix
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Tasks write their results to the database; nothing reads Celery results.
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": SHORT_SOFT_TIME_LIMIT,
        "task_time_limit": SHORT_TIME_LIMIT,
        # Each queue its own direct exchange and routing key: queues sharing Celery's default exchange and key
        # would each receive a copy of every message.
        "task_queues": [
            Queue(queue.value, Exchange(queue.value), routing_key=queue.value)  # type: ignore[no-untyped-call]
            for queue in TaskQueue
        ],
        "task_default_exchange": TaskQueue.DEFAULT.value,
        "task_default_routing_key": TaskQueue.DEFAULT.value,
        "task_default_queue": TaskQueue.DEFAULT.value,
        "task_routes": TASK_ROUTES,
        "task_annotations": [FinetuneLimits()],
        # A producer must not hang a request on a dead broker: try briefly, then the inbox sweeper re-sends.
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": {
            "purge-expired-idempotency-keys": {
                "task": PURGE_EXPIRED_IDEMPOTENCY_KEYS,
                "schedule": timedelta(hours=1),
            },
            # Every minute: with the ingest queue idle, a message a dead worker held is re-sent a minute after
            # its event arrived (app.core.broker), instead of after the transport's hour.
            "requeue-stale-webhook-events": {
                "task": REQUEUE_STALE_WEBHOOK_EVENTS,
                "schedule": timedelta(minutes=1),
            },
            "drain-pending-revocations": {
                "task": DRAIN_PENDING_REVOCATIONS,
                "schedule": timedelta(minutes=1),
            },
            "reconcile-wearables": {"task": RECONCILE_WEARABLES, "schedule": timedelta(days=1)},
            "ensure-oura-subscriptions": {"task": ENSURE_OURA_SUBSCRIPTIONS, "schedule": timedelta(days=1)},
            # Aged meters decay even without new readings; lost recompute messages are sent again (every
            # minute, for the same reason as the inbox's sweep).
            "refresh-meters": {
                "task": REFRESH_METERS,
                "schedule": timedelta(minutes=1),
            },
            "resend-stuck-calendar-syncs": {
                "task": RESEND_STUCK_CALENDAR_SYNCS,
                "schedule": timedelta(minutes=1),
            },
            # Channels never renew themselves; also asks for syncs of calendars push left alone.
            "calendar-renew-channels": {"task": CALENDAR_RENEW_CHANNELS, "schedule": timedelta(hours=6)},
            "calendar-pull-tasks": {
                "task": CALENDAR_PULL_TASKS,
                "schedule": settings.google_tasks_pull_interval,
            },
            **finetune_beat_schedule(settings),
        },
    }


def finetune_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The weekly fine-tune sweep (crontab ``RHYTHM_FINETUNE_SCHEDULE``, UTC), the expired-lease sweeper and
    the vLLM adapter reconciliation."""
    minute, hour, day_of_month, month, day_of_week = settings.finetune_schedule.split()
    return {
        "schedule-weekly-finetunes": {
            "task": SCHEDULE_WEEKLY_FINETUNES,
            "schedule": crontab(
                minute=minute,
                hour=hour,
                day_of_month=day_of_month,
                month_of_year=month,
                day_of_week=day_of_week,
            ),
        },
        "requeue-stale-finetune-jobs": {
            "task": REQUEUE_STALE_FINETUNE_JOBS,
            "schedule": settings.finetune_sweep_interval,
        },
        "reconcile-adapters": {
            "task": RECONCILE_ADAPTERS,
            "schedule": settings.adapter_reconcile_interval,
        },
    }


def create_celery(settings: Settings, *, include: Iterable[str] = ()) -> Celery:
    """A Celery app configured from ``settings``; ``include`` names the task modules a worker imports."""
    # Task code logs through structlog like the API: same format, JSON in production.
    configure_logging(settings.log_level, json=settings.json_logs)
    celery = Celery("rhythm", include=list(include), set_as_current=False)
    celery.conf.update(celery_config(settings))
    return celery


@lru_cache(maxsize=8)
def celery_for(settings: Settings) -> Celery:
    """The producer-side app for ``settings`` (one per settings value and process, built on first use)."""
    return create_celery(settings)


def get_celery() -> Celery:
    """The producer-side app for the process-wide settings."""
    return celery_for(get_settings())

"""What the broker can tell a sweeper: how many messages wait on a queue.

Why a sweeper asks. With late ack a worker holds the message it runs until it finishes; a worker killed
outright (SIGKILL, OOM, a lost machine) takes that message with it, and Redis gives it back only after the
transport's visibility timeout (an hour). The inbox and the meter slots know the work is still due, but on
age alone they cannot tell a message that is *lost* from one that *waits behind a backlog*, so they used to
wait 15 minutes for either. The queue's depth tells them apart cheaply: when nothing waits on the queue, a
job announced more than a minute ago that never started is not behind anything; its message is held by a
dead worker (or by a live one busy with a long job), and sending it again is safe because every handler on
these queues is idempotent. When the broker cannot be asked, the answer is ``None`` and the sweepers keep
their long wait.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from app.core.config import Settings
from app.core.tasks import TaskQueue, celery_for

log = structlog.get_logger(__name__)

# How long past its due time a job that never started is called stranded when nothing waits on its queue.
STRANDED_AFTER = timedelta(minutes=1)


def queue_depth(settings: Settings, queue: TaskQueue) -> int | None:
    """Messages waiting on ``queue`` (not those already delivered to a worker); ``None`` if unknown."""
    celery = celery_for(settings)
    try:
        with celery.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0)
            # A non-passive declare: Redis deletes an empty list, and a passive one would call that "no
            # queue". The declared name is the one producers route to; kombu adds the key prefix.
            _, count, _ = connection.default_channel.queue_declare(queue=queue.value, passive=False)
    except Exception as exc:  # the sweeper falls back to its long wait
        log.warning("broker_queue_depth_unknown", queue=queue.value, error=type(exc).__name__)
        return None
    return int(count)


def lost_after(
    settings: Settings, queue: TaskQueue, otherwise: timedelta, held_back: timedelta = timedelta(0)
) -> timedelta:
    """How long a sweeper waits before it calls a job on ``queue`` that never started lost: ``held_back``
    (a countdown the job was sent with) plus :data:`STRANDED_AFTER` when nothing waits on the queue,
    ``otherwise`` (the sweeper's long wait) when something does or the broker cannot say."""
    if queue_depth(settings, queue) == 0:
        return held_back + STRANDED_AFTER
    return otherwise

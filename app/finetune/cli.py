"""``rhythm finetune --user ID``: this ISO week's fine-tune job of one user, run in the foreground.

The job is the same row a worker would run (one per user and week, leased, gated, deployed), created without
sending it to the workers, so an operator sees the whole run here with a progress bar.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import typer


def finetune(
    user: Annotated[str, typer.Option("--user", help="The user's id.")],
) -> None:
    """Train, gate and deploy USER's adapter of this ISO week (or show the week's job if it already ran)."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from app.core.config import get_settings
    from app.core.db import task_session
    from app.finetune import service
    from app.models import FinetuneStatus
    from app.models.base import utcnow

    try:
        user_id = uuid.UUID(user)
    except ValueError as exc:
        raise typer.BadParameter("not a UUID", param_hint="--user") from exc
    settings = get_settings()
    torch.set_num_threads(settings.finetune_torch_threads)
    with task_session(settings.sync_database_url) as session:
        if service.JobStore(session).user(user_id) is None:
            typer.echo("error: user not found", err=True)
            raise typer.Exit(1)
        job = service.request_job(session, settings, user_id, utcnow(), send=False)
        job_id, status = job.id, job.status
    if status is not FinetuneStatus.QUEUED:
        typer.echo(f"job {job_id} of {job.iso_week} is already {status.value}")
        raise typer.Exit(0 if status is not FinetuneStatus.FAILED else 1)
    columns = (TextColumn("fine-tune"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("steps", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        outcome = service.run_job(settings, job_id, on_progress=on_progress)
    typer.echo(json.dumps({"job_id": str(job_id), "status": outcome.status, "adapter": outcome.adapter}))
    if outcome.status == "skipped":
        typer.echo(f"skipped: {outcome.detail.get('reason')}")
    elif outcome.detail:
        typer.echo(f"gate: {outcome.detail['decision']}")

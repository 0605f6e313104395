"""Queue lag of a simulation run (issue 16's report): how long work waited between arriving and being done.

* Webhooks: ``handled_at - received_at`` of each of the run's inbox events, per source. This is the whole
  way from the API storing the raw body to a worker finishing the event: queue wait plus processing, plus any
  retries (a killed worker's event waits for its redelivery, a provider outage for its backoff).
* Fine-tune jobs: ``started_at - created_at`` (waiting for a worker) and ``finished_at - started_at``
  (training, gate and deploy), from the ops API's job rows.

Times come from the service's own rows (one clock: the database's), never from the simulator's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np


def _seconds(later: Any, earlier: Any) -> float | None:
    if not later or not earlier:
        return None
    end = later if isinstance(later, datetime) else datetime.fromisoformat(str(later))
    start = earlier if isinstance(earlier, datetime) else datetime.fromisoformat(str(earlier))
    return (end - start).total_seconds()


def stats(values: Iterable[float]) -> dict[str, Any]:
    """n, p50, p95, p99 and max of some durations in seconds (``None`` figures when there are none)."""
    x = np.asarray(list(values), dtype=np.float64)
    if not len(x):
        return {"n": 0, "p50_s": None, "p95_s": None, "p99_s": None, "max_s": None}
    p50, p95, p99 = np.quantile(x, [0.5, 0.95, 0.99])
    return {
        "n": len(x),
        "p50_s": round(float(p50), 3),
        "p95_s": round(float(p95), 3),
        "p99_s": round(float(p99), 3),
        "max_s": round(float(x.max()), 3),
    }


def queue_lag(inbox: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Lag per webhook source (handled events only; the books count the unhandled ones) and of the
    fine-tune jobs (started ones; finished ones for the run time)."""
    by_source: dict[str, list[float]] = {}
    for event in inbox:
        lag = _seconds(event.get("handled_at"), event.get("received_at"))
        if lag is not None:
            by_source.setdefault(str(event["source"]), []).append(lag)
    jobs = list(jobs)
    waits = [w for j in jobs if (w := _seconds(j.get("started_at"), j.get("created_at"))) is not None]
    runs = [r for j in jobs if (r := _seconds(j.get("finished_at"), j.get("started_at"))) is not None]
    return {
        "webhooks_received_to_handled": {s: stats(v) for s, v in sorted(by_source.items())},
        "finetune_created_to_started": stats(waits),
        "finetune_started_to_finished": stats(runs),
    }

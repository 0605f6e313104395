"""Figures of a simulation run: acceptance by week, meter fidelity, endpoint latencies, the books, rows and
bytes per user-week; as a dict (``--json``), rich tables, and a PNG.

Intervals: acceptance is a per-person mean, so its 95 % interval is a percentile bootstrap over people (a
person's answers are not independent of each other), 2,000 resamples with a fixed seed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from app.simulate.runner import ARM_ADAPTERS, ARM_BASE, SimResult
from domain import METERS
from sim.response import ACCEPTED

BOOTSTRAP = 2000
FIDELITY_LABEL = (
    "consistency check of our own observation model (sim/observe.py) and its inverse (the bridge's Terra "
    "mapping + meters engine), not evidence about real people"
)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = x.argsort(kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    # Ties share their mean rank.
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return np.asarray(sums[inverse] / counts[inverse])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (NaN with fewer than 3 pairs or a constant side)."""
    if len(x) < 3:
        return math.nan
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _bootstrap_mean(per_person: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    if len(per_person) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per_person), size=(BOOTSTRAP, len(per_person)))
    means = per_person[draws].mean(axis=1)
    return float(per_person.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def acceptance(result: SimResult) -> list[dict[str, Any]]:
    """Per simulated week (and arm): the mean of each person's acceptance rate, with its 95 % interval; and,
    with twins, the paired difference adapters - base."""
    rows: list[dict[str, Any]] = []
    arms = sorted({a.arm for a in result.answers})
    for week in range(result.config.weeks):
        by_arm: dict[str, dict[int, float]] = {}
        for arm in arms:
            answers = [a for a in result.answers if a.week == week and a.arm == arm]
            people: dict[int, list[int]] = {}
            for a in answers:
                people.setdefault(a.person, []).append(a.response == ACCEPTED)
            rates = {p: float(np.mean(v)) for p, v in people.items()}
            by_arm[arm] = rates
            mean, low, high = _bootstrap_mean(np.array(list(rates.values())))
            served = sum(1 for a in answers if a.adapter)
            rows.append(
                {
                    "week": week + 1,
                    "arm": arm,
                    "people": len(rates),
                    "answers": len(answers),
                    "accepted": mean,
                    "low": low,
                    "high": high,
                    "served_by_adapter": served,
                }
            )
        if ARM_ADAPTERS in by_arm and ARM_BASE in by_arm:
            # Twins are rows 2i (adapters) and 2i+1 (base). Every pair (intent to treat: the gate may hold an
            # adapter back), then only the pairs whose twin an adapter actually served that week.
            adapted = {a.person for a in result.answers if a.week == week and a.adapter}
            pairs = [(p, rate) for p, rate in by_arm[ARM_ADAPTERS].items() if p + 1 in by_arm[ARM_BASE]]
            for label, chosen in (
                ("adapters - base (paired)", pairs),
                ("served by an adapter - base (paired)", [(p, r) for p, r in pairs if p in adapted]),
            ):
                diffs = np.array([rate - by_arm[ARM_BASE][p + 1] for p, rate in chosen])
                mean, low, high = _bootstrap_mean(diffs)
                rows.append(
                    {
                        "week": week + 1,
                        "arm": label,
                        "people": len(diffs),
                        "answers": 0,
                        "accepted": mean,
                        "low": low,
                        "high": high,
                        "served_by_adapter": 0,
                    }
                )
    return rows


def fidelity(result: SimResult) -> dict[str, Any]:
    """Per meter: pooled Spearman and mean error (bridge - true) over all simulated mornings with a value,
    and the per-person Spearman (median, min)."""
    out: dict[str, Any] = {"label": FIDELITY_LABEL, "meters": {}}
    for j, meter in enumerate(METERS):
        pairs = [(p.person, p.true[j], p.bridge[j]) for p in result.meters if not math.isnan(p.bridge[j])]
        relative = [
            (p.deviation[j], p.bridge[j])
            for p in result.meters
            if not math.isnan(p.bridge[j] + p.deviation[j])
        ]
        total = sum(1 for p in result.meters)
        if not pairs:
            out["meters"][meter.value] = {"n": 0, "of": total, "note": "no input (needs the calendar bridge)"}
            continue
        person = np.array([p for p, _, _ in pairs])
        true = np.array([t for _, t, _ in pairs])
        bridge = np.array([b for _, _, b in pairs])
        per_person = [spearman(true[person == k], bridge[person == k]) for k in np.unique(person)]
        per_person = [r for r in per_person if not math.isnan(r)]
        out["meters"][meter.value] = {
            "n": len(pairs),
            "of": total,
            "spearman": spearman(true, bridge),
            "mean_error": float((bridge - true).mean()),
            "mean_abs_error": float(np.abs(bridge - true).mean()),
            "per_user_spearman_median": float(np.median(per_person)) if per_person else math.nan,
            "per_user_spearman_min": float(np.min(per_person)) if per_person else math.nan,
            # The engine reads a signal against the person's own last 28 days, so it is built to follow the
            # true meter's deviation from its trailing mean rather than its level: both are reported.
            "spearman_vs_deviation": spearman(
                np.array([d for d, _ in relative]), np.array([b for _, b in relative])
            ),
        }
    return out


def endpoints(result: SimResult) -> dict[str, Any]:
    calls = result.calls
    out: dict[str, Any] = {}
    for name in sorted(set(calls.latencies) | set(calls.transport_errors)):
        lat = np.array(calls.latencies.get(name, []))
        statuses: dict[int, int] = dict(calls.statuses.get(name, {}))
        out[name] = {
            "n": len(lat),
            "p50_ms": float(np.quantile(lat, 0.5)) if len(lat) else math.nan,
            "p99_ms": float(np.quantile(lat, 0.99)) if len(lat) else math.nan,
            "4xx": sum(c for s, c in statuses.items() if 400 <= s < 500),
            "5xx": sum(c for s, c in statuses.items() if s >= 500),
            "transport_errors": calls.transport_errors.get(name, 0),
            "retries": calls.retries.get(name, 0),
            "gave_up": calls.gave_up.get(name, 0),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
        }
    return out


def storage(result: SimResult) -> dict[str, Any]:
    user_weeks = len(result.people) * (result.config.warmup_weeks + result.config.weeks)
    rows = result.books["rows_by_table"]
    return {
        "user_weeks": user_weeks,
        "rows_per_user_week": {k: v / user_weeks for k, v in sorted(rows.items()) if v},
        "export_bytes_per_user_week": result.books["export_bytes"] / user_weeks,
        "note": "bytes of the users' JSON exports (raw webhook bodies base64), not bytes on disk",
    }


def summary(result: SimResult) -> dict[str, Any]:
    config = result.config
    return {
        "config": {
            "users": config.users,
            "people": len(result.people),
            "weeks": config.weeks,
            "warmup_weeks": config.warmup_weeks,
            "profiles": config.profiles,
            "seed": config.seed,
            "sweep": config.sweep,
            "missing": config.missing,
            "calendar": config.calendar,
            "life_acts": config.calendar and config.life_acts,
            "start": result.start.isoformat(),
        },
        "wall_s": round(result.wall_s, 1),
        "acceptance": acceptance(result),
        "fidelity": fidelity(result),
        "endpoints": endpoints(result),
        "books": result.books,
        "storage": storage(result),
        "sweeps": result.ledger.sweeps,
        "events": result.events,
    }


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_tables(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    # Wide enough for every column when piped (rich falls back to 80 columns without a terminal).
    console = Console(width=max(Console().width, 130))
    table = Table(title="Acceptance by week (mean of per-person rates, 95 % bootstrap over people)")
    for col in ("week", "arm", "people", "answers", "accepted", "95 % interval", "by adapter"):
        table.add_column(col)
    for row in report["acceptance"]:
        table.add_row(
            str(row["week"]),
            row["arm"],
            str(row["people"]),
            str(row["answers"]),
            _f(row["accepted"]),
            f"[{_f(row['low'])}, {_f(row['high'])}]",
            str(row["served_by_adapter"]),
        )
    console.print(table)
    table = Table(title="Meter fidelity: " + report["fidelity"]["label"])
    for col in (
        "meter",
        "n",
        "spearman",
        "mean err",
        "mean |err|",
        "per-user ρ median",
        "min",
        "ρ vs 28-d dev.",
    ):
        table.add_column(col)
    for meter, row in report["fidelity"]["meters"].items():
        if not row["n"]:
            table.add_row(meter, f"0/{row['of']}", row["note"], "", "", "", "", "")
            continue
        table.add_row(
            meter,
            f"{row['n']}/{row['of']}",
            _f(row["spearman"]),
            _f(row["mean_error"]),
            _f(row["mean_abs_error"]),
            _f(row["per_user_spearman_median"]),
            _f(row["per_user_spearman_min"]),
            _f(row["spearman_vs_deviation"]),
        )
    console.print(table)
    table = Table(title="Endpoints (client-side, every answered attempt)")
    for col in ("endpoint", "n", "p50 ms", "p99 ms", "4xx", "5xx", "transport", "retries", "gave up"):
        table.add_column(col)
    for name, row in report["endpoints"].items():
        table.add_row(
            name,
            str(row["n"]),
            _f(row["p50_ms"], 1),
            _f(row["p99_ms"], 1),
            str(row["4xx"]),
            str(row["5xx"]),
            str(row["transport_errors"]),
            str(row["retries"]),
            str(row["gave_up"]),
        )
    console.print(table)
    table = Table(title="Books (every lost_* / duplicated_* / unhandled_* must be 0)")
    table.add_column("item")
    table.add_column("value")
    for key, value in report["books"].items():
        if key not in ("rows_by_table", "examples", "finetune_attempts", "calendar", "queue_lag"):
            table.add_row(key, str(value))
    console.print(table)
    lag = report["books"].get("queue_lag")
    if lag:
        _print_lag(console, lag)
    calendar = report["books"].get("calendar")
    if calendar:
        _print_calendar(console, calendar)
    storage_ = report["storage"]
    console.print(
        f"Per user-week ({storage_['user_weeks']} user-weeks): "
        + ", ".join(f"{k} {v:.1f}" for k, v in storage_["rows_per_user_week"].items())
        + f" rows; {storage_['export_bytes_per_user_week'] / 1024:.1f} KiB ({storage_['note']})"
    )
    for event in report["events"]:
        console.print(f"fault: {event}")
    outages = report.get("faults", {}).get("provider_outage")
    for outage in outages if isinstance(outages, list) else []:
        console.print(
            f"provider outage: {outage['seconds']} s, refused inside it {outage['refused']} "
            f"(Retry-After {outage['retry_after_s']} s); events retried {report['books']['events_retried']}"
        )


def _print_lag(console: Any, lag: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Queue lag (service rows: webhook received → handled, fine-tune job waits and runs)")
    for col in ("what", "n", "p50 s", "p95 s", "p99 s", "max s"):
        table.add_column(col)
    rows = [(f"webhook {s}", v) for s, v in lag["webhooks_received_to_handled"].items()]
    rows += [("fine-tune created → started", lag["finetune_created_to_started"])]
    rows += [("fine-tune started → finished", lag["finetune_started_to_finished"])]
    for name, row in rows:
        table.add_row(name, str(row["n"]), *(_f(row[k], 2) for k in ("p50_s", "p95_s", "p99_s", "max_s")))
    console.print(table)


def _print_calendar(console: Any, books: dict[str, Any]) -> None:
    from rich.table import Table

    low, high = books["accuracy_95"]
    console.print(
        f"Calendar: {books['notifications_sent']} notifications ({books['notifications_handled']} handled), "
        f"{books['syncs_completed']}/{books['syncs_requested']} syncs done; events created "
        f"{books['events_created']}, cancelled {books['events_cancelled']}, synced "
        f"{books['events_synced']} of {books['events_live']} live; "
        f"lost {books['lost_calendar_events']}, cancelled but kept "
        f"{books['cancelled_not_deleted']}"
    )
    table = Table(
        title=f"Calendar classification: bridge action vs the simulation's truth, accuracy "
        f"{_f(books['accuracy'])} [{_f(low)}, {_f(high)}] (Wilson 95 %)"
    )
    for col in ("true action", "n", "correct", "bridge said"):
        table.add_column(col)
    for truth, row in books["accuracy_by_truth"].items():
        said = ", ".join(f"{k} {v}" for k, v in sorted(row["got"].items(), key=lambda kv: -kv[1]))
        table.add_row(truth, str(row["n"]), str(row["correct"]), said)
    console.print(table)


def plot(result: SimResult, report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for arm in sorted({r["arm"] for r in report["acceptance"] if "paired" not in r["arm"]}):
        rows = [r for r in report["acceptance"] if r["arm"] == arm]
        weeks = [r["week"] for r in rows]
        mean = np.array([r["accepted"] for r in rows])
        err = np.array(
            [
                [m - r["low"] for m, r in zip(mean, rows, strict=True)],
                [r["high"] - m for m, r in zip(mean, rows, strict=True)],
            ]
        )
        ax.errorbar(weeks, mean, yerr=err, marker="o", capsize=3, label=arm)
    ax.set_xticks(range(1, result.config.weeks + 1))
    ax.set_xlabel("simulated week")
    ax.set_ylabel("acceptance (95 % bootstrap over people)")
    ax.set_ylim(0, 1)
    ax.legend()
    ax = axes[1]
    for j, meter in enumerate(METERS):
        pts = [(p.true[j], p.bridge[j]) for p in result.meters if not math.isnan(p.bridge[j])]
        if pts:
            t, b = zip(*pts, strict=True)
            ax.scatter(t, b, s=6, alpha=0.5, label=meter.value)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set_xlabel("true meter (simulator)")
    ax.set_ylabel("bridge meter (engine)")
    ax.set_title("consistency of observation model and engine", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

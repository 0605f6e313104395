"""``rhythm simulate``: the command (registered in :mod:`app.cli`)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from sim.profiles import PROFILE_MODES


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def simulate(
    users: Annotated[
        int, typer.Option(min=1, max=500, help="Simulated people (twice as many with --sweep).")
    ] = 4,
    weeks: Annotated[int, typer.Option(min=1, max=20, help="Simulated weeks with recommendations.")] = 2,
    warmup_weeks: Annotated[int, typer.Option(min=0, max=8, help="Weeks of device data first.")] = 1,
    profiles: Annotated[str, typer.Option(help=f"Profile mode: {', '.join(PROFILE_MODES)}.")] = "archetypes",
    seed: Annotated[int, typer.Option(help="Seed of people, devices and responses.")] = 0,
    sweep: Annotated[bool, typer.Option(help="Twins; one of each gets the weekly fine-tune.")] = False,
    sweep_after: Annotated[
        str, typer.Option(help="Weeks after which to sweep, e.g. '2,3' (default: every week but the last).")
    ] = "",
    base_url: Annotated[
        str | None, typer.Option(help="The stack (default: http://RHYTHM_HOST:RHYTHM_PORT).")
    ] = None,
    spawn: Annotated[
        bool, typer.Option(help="Start API, worker and beat here with the RHYTHM_* settings.")
    ] = False,
    faults: Annotated[
        bool,
        typer.Option(
            help="Kill the worker, restart the API and (with WHOOP people) break WHOOP's API during the run "
            "(--spawn)."
        ),
    ] = False,
    provider: Annotated[
        str,
        typer.Option(
            help="Wearables: terra (pushes its data), whoop (notifies; the worker fetches from a local WHOOP "
            "API) or mix (every other person on WHOOP). whoop and mix need --spawn."
        ),
    ] = "terra",
    calendar: Annotated[
        bool,
        typer.Option(
            help="Everybody also keeps a Google calendar on a local Calendar API (accepted recommendations "
            "plus a life of their own, push notifications); reports classification accuracy. Needs --spawn."
        ),
    ] = False,
    inert_life: Annotated[
        bool,
        typer.Option(
            help="With --calendar: the events of the person's own life are scenery and do not act on their "
            "true meters (the simulated world before 2026-12-04, for comparison)."
        ),
    ] = False,
    vllm: Annotated[
        bool,
        typer.Option(
            "--vllm",
            help="Serve recommendations from a real vLLM CPU server started here (the shipped model, "
            "adapters hot-loaded by the sweep); with --faults it is crashed and restarted. Needs --spawn.",
        ),
    ] = False,
    outage_s: Annotated[
        float, typer.Option(min=1.0, max=3600.0, help="With --faults: seconds WHOOP's API answers 429/503.")
    ] = 60.0,
    drain_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds to wait for the inbox to be processed at the end (default 300; 600 with --faults, "
            "so the inbox's sweeper, which re-sends a killed worker's message a minute or two after the "
            "ingest queue is idle, recovers it)."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Requests in flight at most.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of acceptance and meter fidelity here.")
    ] = None,
) -> None:
    """Simulated people living through a running stack: signed Terra webhooks from their devices,
    recommendations answered by the simulator's response model; prints acceptance, meter fidelity, latencies
    and the books (what was lost: must be nothing)."""
    import numpy as np

    from app.benchmarks.calendar_api import CalendarApi
    from app.benchmarks.provider_api import RecordApi
    from app.core.config import get_settings
    from app.simulate import report as reports
    from app.simulate.calendar import PAGE_SIZE, CalendarWorld
    from app.simulate.runner import PROVIDERS, SimConfig
    from app.simulate.stack import Stack
    from app.simulate.whoop import WhoopWorld

    if profiles not in PROFILE_MODES:
        raise typer.BadParameter(f"expected one of {', '.join(PROFILE_MODES)}", param_hint="--profiles")
    try:
        after = tuple(int(w) for w in sweep_after.split(",") if w.strip())
    except ValueError as exc:
        raise typer.BadParameter(
            "a comma-separated list of week numbers", param_hint="--sweep-after"
        ) from exc
    if faults and not spawn:
        raise typer.BadParameter("--faults needs --spawn (it kills and restarts processes it started)")
    if provider not in PROVIDERS:
        raise typer.BadParameter(f"expected one of {', '.join(PROVIDERS)}", param_hint="--provider")
    if provider != "terra" and not spawn:
        raise typer.BadParameter(
            "--provider whoop/mix needs --spawn (the workers must fetch from this run's local WHOOP API)"
        )
    if vllm and not spawn:
        raise typer.BadParameter("--vllm needs --spawn (the stack it starts is pointed at this run's vLLM)")
    if calendar and not spawn:
        raise typer.BadParameter(
            "--calendar needs --spawn (the workers must sync from this run's local Calendar API)"
        )
    if inert_life and not calendar:
        raise typer.BadParameter(
            "--inert-life needs --calendar (without calendars nobody has a life of events)"
        )
    settings = get_settings()
    admin = settings.admin_token.get_secret_value()
    secret = settings.terra_webhook_secret.get_secret_value()
    if not admin or not secret:
        raise typer.BadParameter(
            "set RHYTHM_ADMIN_TOKEN and RHYTHM_TERRA_WEBHOOK_SECRET (those of the stack)"
        )

    whoop = WhoopWorld(RecordApi()) if provider != "terra" else None
    calendars = (
        CalendarWorld(CalendarApi(page_size=PAGE_SIZE), np.random.default_rng([seed, 4]))
        if calendar
        else None
    )
    # The run's own WHOOP secret and token key, handed to the stack it starts (never the configured ones:
    # the workers must trust this run's signatures and decrypt the tokens this process stores).
    whoop_secret = "sim-whoop-" + secrets.token_hex(16) if whoop else ""
    secret_key = secrets.token_urlsafe(32) if whoop or calendars else ""
    with ExitStack() as cleanup:
        stack: Stack | None = None
        server: Any = None
        if spawn:
            port = _free_port()
            logs = Path(tempfile.mkdtemp(prefix="rhythm-simulate-"))
            # The service's draws keyed by the run's seed: the same command and seed lives the same lives.
            env = {**os.environ, "RHYTHM_PORT": str(port), "RHYTHM_SAMPLING_SEED": str(seed)}
            if vllm:
                server = _start_vllm(logs)
                cleanup.callback(server.stop)
                env |= {
                    "RHYTHM_POLICY_BACKEND": "vllm",
                    "RHYTHM_VLLM_URL": server.url,
                    "RHYTHM_VLLM_MODEL": server.name,
                    # A restarted vLLM lists no adapter until the reconcile: check often in a simulation.
                    "RHYTHM_ADAPTER_RECONCILE_INTERVAL": f"PT{VLLM_RECONCILE_S}S",
                }
            if whoop is not None:
                served = cleanup.enter_context(whoop.api.serving())
                env |= {
                    "RHYTHM_WHOOP_CLIENT_SECRET": whoop_secret,
                    "RHYTHM_SECRET_KEY": secret_key,
                    "RHYTHM_WHOOP_API_BASE_URL": served.url,
                    "RHYTHM_WHOOP_TOKEN_URL": f"{served.url}/oauth/token",
                }
            if calendars is not None:
                base = cleanup.enter_context(calendars.api.serving())
                env |= {
                    "RHYTHM_SECRET_KEY": secret_key,
                    "RHYTHM_GOOGLE_CLIENT_ID": "sim.apps.googleusercontent.com",
                    "RHYTHM_GOOGLE_CLIENT_SECRET": "google-sim-" + secrets.token_hex(16),
                    "RHYTHM_GOOGLE_API_BASE_URL": base,
                    "RHYTHM_GOOGLE_TOKEN_URL": f"{base}/token",
                }
            stack = Stack(env, logs, port)
            typer.echo(f"starting the stack on {stack.base_url} (logs in {logs})", err=True)
            cleanup.callback(stack.stop)
            stack.start()
        url = stack.base_url if stack else base_url or f"http://{settings.host}:{settings.port}"
        config = SimConfig(
            url,
            admin,
            secret,
            users=users,
            weeks=weeks,
            warmup_weeks=warmup_weeks,
            profiles=profiles,
            seed=seed,
            sweep=sweep,
            sweep_after=after,
            drain_timeout=drain_timeout if drain_timeout is not None else (600.0 if faults else 300.0),
            concurrency=concurrency,
            provider=provider,
            whoop_secret=whoop_secret,
            sync_database_url=settings.sync_database_url,
            secret_key=secret_key,
            calendar=calendar,
            life_acts=not inert_life,
        )
        summary = asyncio.run(_run(config, stack, faults, whoop, outage_s, calendars, server))
    result, report = summary
    if plot is not None:
        reports.plot(result, report, plot)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        reports.print_tables(report)
    books = {**report["books"], **report["books"].get("calendar", {})}
    lost = [k for k, v in books.items() if k.startswith(("lost_", "duplicated_", "unhandled_")) and v]
    lost += ["cancelled_not_deleted"] if books.get("cancelled_not_deleted") else []
    if lost or report.get("unexpected_5xx"):
        raise typer.Exit(code=1)


VLLM_RECONCILE_S = 15


def _start_vllm(logs: Path) -> Any:
    from app.benchmarks.vllm_server import VLLMServer, ensure_venv
    from policy.paths import SHIPPED_MODEL_DIR

    typer.echo("starting vLLM (CPU build; builds its venv on first use)", err=True)
    ensure_venv()
    return VLLMServer(SHIPPED_MODEL_DIR, logs / "vllm.log").start()


async def vllm_adapter_books(server: Any, people: list[Any], config: Any, wait_s: float) -> dict[str, Any]:
    """Every person's active adapter against what vLLM lists, after waiting up to ``wait_s`` for the
    reconcile to load the ones a restart made it forget."""
    import httpx

    started = time.monotonic()
    active: set[str] = set()
    async with httpx.AsyncClient(base_url=config.base_url, timeout=30.0) as client:
        for person in people:
            response = await client.get(
                f"/v1/ops/users/{person.user_id}/adapters",
                headers={"authorization": f"Bearer {config.admin_token}"},
            )
            response.raise_for_status()
            if response.json()["active"] is not None:
                active.add(str(response.json()["active"]["name"]))
    async with httpx.AsyncClient(base_url=server.root, timeout=10.0) as client:
        while True:
            listed = {
                str(m["id"]) for m in (await client.get("/v1/models")).json()["data"] if m.get("parent")
            }
            if active <= listed or time.monotonic() - started > wait_s:
                break
            await asyncio.sleep(1.0)
    return {
        "active_adapters": len(active),
        "listed_by_vllm": len(active & listed),
        "missing_from_vllm": sorted(active - listed),
        "waited_s": round(time.monotonic() - started, 1),
    }


async def _run(
    config: Any,
    stack: Any,
    faults: bool,
    whoop: Any,
    outage_s: float,
    calendars: Any = None,
    vllm: Any = None,
) -> tuple[Any, dict[str, Any]]:
    from app.core.config import get_settings
    from app.simulate import report as reports
    from app.simulate.faults import FaultPlan
    from app.simulate.runner import Simulation

    days = 7 * (config.warmup_weeks + config.weeks)
    provider_api = whoop.api if whoop is not None else None
    cooldown = get_settings().policy_cooldown.total_seconds()
    plan = FaultPlan.spread(stack, days, provider_api, outage_s, vllm, cooldown) if faults else None
    simulation = Simulation(
        config,
        on_day=plan.on_day if plan else None,
        before_books=plan.finish if plan else None,
        whoop=whoop,
        calendar=calendars,
    )
    if plan is not None:
        simulation.events = plan.events
        plan.open_events = simulation.open_events
    result = await simulation.run()
    report = reports.summary(result)
    if vllm is not None:
        wait_s = 3 * VLLM_RECONCILE_S + 30.0
        report["books"]["vllm"] = await vllm_adapter_books(vllm, result.people, config, wait_s)
        report["books"]["lost_vllm_adapters"] = len(report["books"]["vllm"]["missing_from_vllm"])
    if plan is not None:
        outside = plan.outside_restarts(result.calls.server_errors)
        report["unexpected_5xx"] = len(outside)
        report["faults"] = {
            "events": plan.events,
            "restart_windows": plan.windows,
            "vllm_restart_windows": plan.vllm_windows,
            "recommendations_by_backend": plan.backends_report(result.ledger.backends),
            "provider_outage": plan.outage_report()
            or "not applicable: nobody wears WHOOP (Terra pushes its data, nothing is fetched)",
        }
    else:
        report["unexpected_5xx"] = len(result.calls.server_errors)
    return result, report

"""Getting adapters to the model server: vLLM's runtime LoRA routes, and the names and folders of versions.

Every weekly adapter has its own immutable name and folder, ``u<user hex>-w<YYYYWW>`` under
``<adapter_dir>/u<user hex>/w<YYYYWW>`` (vllm.md §6): a new version is loaded next to the old one, the user's
pointer (the ``active`` row in ``adapters``) is switched, then the old name is unloaded. ``load_inplace`` is
never used. vLLM forgets runtime-loaded adapters when it restarts, so :func:`reconcile` (beat, and worker
start-up) loads every active adapter the server does not list, and unloads listed ones no user points at.

The local backend needs none of this: it loads an adapter's folder on the first request that names it.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import structlog

from app.core.config import PolicyBackend, Settings

log = structlog.get_logger(__name__)

ADAPTER_NAME = re.compile(r"^u[0-9a-f]{32}-w\d{6}$")


class DeployError(Exception):
    """The model server refused or could not be reached; the job fails (and is retried) undeployed."""


def adapter_name(user_id: uuid.UUID, iso_year: int, iso_week: int) -> str:
    return f"u{user_id.hex}-w{iso_year}{iso_week:02d}"


def adapter_folder(settings: Settings, user_id: uuid.UUID, iso_year: int, iso_week: int) -> Path:
    return Path(settings.adapter_dir).resolve() / f"u{user_id.hex}" / f"w{iso_year}{iso_week:02d}"


def user_adapter_root(settings: Settings, user_id: uuid.UUID) -> Path:
    return Path(settings.adapter_dir).resolve() / f"u{user_id.hex}"


def uses_vllm(settings: Settings) -> bool:
    return settings.policy_backend is PolicyBackend.VLLM


def _client(settings: Settings) -> httpx.Client:
    headers = {}
    if key := settings.vllm_api_key.get_secret_value():
        headers["Authorization"] = f"Bearer {key}"
    # Loading reads the adapter from disk and validates it in the engine: seconds, not the 2 s of a decision.
    return httpx.Client(base_url=settings.vllm_url.rstrip("/"), headers=headers, timeout=30.0)


def load(settings: Settings, name: str, path: str) -> None:
    """``POST /v1/load_lora_adapter``; an adapter already loaded under ``name`` counts as loaded."""
    try:
        with _client(settings) as client:
            response = client.post("/load_lora_adapter", json={"lora_name": name, "lora_path": path})
    except httpx.HTTPError as exc:
        raise DeployError(f"vLLM unreachable: {type(exc).__name__}") from exc
    if response.status_code == 200:
        log.info("adapter_loaded", adapter=name)
        warm(settings, name)
        return
    if response.status_code == 400 and "already" in response.text:
        return
    raise DeployError(f"vLLM refused adapter {name}: {response.status_code} {response.text[:300]}")


WARM_TIMEOUT_S = 60.0


def warm(settings: Settings, name: str) -> None:
    """One decision with the new adapter, exactly as recommendations ask (structured output, action
    logprobs), with a generous timeout.

    vLLM's first request through a freshly loaded LoRA is slow on CPU (seconds: more than a decision's
    ``vllm_timeout``). ``rhythm simulate --vllm --faults`` showed what that costs: after a restart the
    reconcile loaded four adapters, their users' first requests timed out, the circuit breaker opened and
    *every* user got the fallback for its cooldown. Paying it here, in the worker, keeps it off the request
    path. A failure is only logged: the adapter is loaded, and a slow first request falls back as before.
    """
    import asyncio

    from app.recommend.backends.base import BackendError, PolicyInput
    from app.recommend.backends.vllm import VLLMBackend, server_root
    from domain import Meters, Slot, SlotState
    from policy.prompt import render_prompt

    current = SlotState(0, Slot.MORNING, Meters.neutral())
    headers = {}
    if key := settings.vllm_api_key.get_secret_value():
        headers["Authorization"] = f"Bearer {key}"

    async def decide() -> str | None:
        async with httpx.AsyncClient(
            base_url=server_root(settings.vllm_url), timeout=WARM_TIMEOUT_S, headers=headers
        ) as http:
            backend = VLLMBackend(http, model=settings.vllm_model)
            inp = PolicyInput(render_prompt([], current), [], current, adapter=name)
            return (await backend.decide(inp)).adapter

    try:
        served = asyncio.run(decide())
    except BackendError as exc:
        log.warning("adapter_warm_failed", adapter=name, error=str(exc)[:200])
        return
    if served != name:
        # A 404 for the adapter: the server forgot it right after loading (restarted in between).
        log.warning("adapter_warm_failed", adapter=name, error="not served by the adapter")
        return
    log.info("adapter_warmed", adapter=name)


def unload(settings: Settings, name: str) -> None:
    """``POST /v1/unload_lora_adapter``; an unknown name is already unloaded. Failures are only logged:
    the reconciliation unloads it later."""
    try:
        with _client(settings) as client:
            response = client.post("/unload_lora_adapter", json={"lora_name": name})
    except httpx.HTTPError as exc:
        log.warning("adapter_unload_failed", adapter=name, error=type(exc).__name__)
        return
    if response.status_code not in (200, 404):
        log.warning("adapter_unload_failed", adapter=name, status=response.status_code)


def listed(settings: Settings) -> set[str]:
    """Names of the LoRA adapters vLLM serves now (``/v1/models`` entries with a parent)."""
    try:
        with _client(settings) as client:
            response = client.get("/models")
            response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DeployError(f"vLLM unreachable: {type(exc).__name__}") from exc
    return {str(entry["id"]) for entry in response.json().get("data", []) if entry.get("parent")}

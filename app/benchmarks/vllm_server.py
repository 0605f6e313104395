"""Start, crash, restart and stop a real vLLM CPU server (``scripts/vllm-serve.sh``): for the integration
tests and for ``rhythm simulate --vllm`` (whose fault run restarts it).

The server runs in its own process group; :meth:`VLLMServer.stop` signals exactly that group (the API server
and the engine processes it spawned), never anything matched by name. A restart keeps the port, so the API
that points at it (``RHYTHM_VLLM_URL``) needs no change, as with a production model server behind a fixed
address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import httpx

from app.benchmarks.api import free_port
from app.recommend.backends.base import PolicyInput
from app.recommend.backends.vllm import VLLMBackend
from domain import Meters, Slot, SlotState
from policy.prompt import render_prompt

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "scripts" / "vllm-serve.sh"
VENV = REPO / "scripts" / "vllm-venv.sh"
SERVED_NAME = "rhythm-policy"


def ensure_venv(timeout_s: float = 900.0) -> None:
    """Build the vLLM venv if this machine has none yet (about a minute; a no-op afterwards)."""
    subprocess.run([str(VENV)], check=True, timeout=timeout_s, stdout=subprocess.DEVNULL)


class VLLMServer:
    def __init__(self, model_dir: Path, log_path: Path, *, name: str = SERVED_NAME) -> None:
        self.model_dir = model_dir
        self.log_path = log_path
        self.name = name
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """What ``RHYTHM_VLLM_URL`` is set to."""
        return f"{self.root}/v1"

    def start(self, timeout_s: float = 180.0) -> VLLMServer:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(SERVE), str(self.model_dir), str(self.port), self.name],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.root}/health", timeout=2.0).status_code == 200:
                    self._warm_up()
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"vLLM did not answer /health within {timeout_s:.0f} s:\n{self.log_tail()}")

    def _warm_up(self) -> None:
        """One request through the vllm backend itself, so exactly the shape recommendations use.

        The first request of a new shape (structured output, ``logprob_token_ids``) compiles code paths: about
        2 s on 2 cores, more than the backend's timeout. Pay it here, not inside a test.
        """

        async def decide() -> None:
            async with httpx.AsyncClient(base_url=self.root, timeout=120.0) as http:
                current = SlotState(0, Slot.MORNING, Meters.neutral())
                await VLLMBackend(http).decide(PolicyInput(render_prompt([], current), [], current))

        # A thread of its own: this may be called from a fixture while the tests' event loop is running.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, decide()).result()

    def restart(self, timeout_s: float = 180.0) -> VLLMServer:
        """Crash the server and start a new one on the same port (it forgets every runtime LoRA adapter)."""
        self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.log_path = self.log_path.with_name(f"{self.log_path.stem}-restarted{self.log_path.suffix}")
        return self.start(timeout_s)

    def kill(self) -> None:
        """Crash the server (SIGKILL to its process group), as an outage would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        # Engine workers left behind by a crashed API server are in the same group.
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

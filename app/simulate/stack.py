"""A whole Rhythm stack as real processes (API, one Celery worker, beat), for ``rhythm simulate --spawn`` and
``--faults`` and for the CI-sized test: the same commands ``scripts/run.sh`` runs, but each process held
separately so a fault can SIGKILL the worker or restart the API on its own.

Postgres and Redis are not started here: ``env`` names them (``RHYTHM_DATABASE_URL``, ``RHYTHM_BROKER_URL``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

BIN = Path(sys.executable).parent
QUEUES = "ingest,calendar,finetune,default"


class Stack:
    """API, worker and beat with ``env`` (RHYTHM_* settings); logs go to ``log_dir``."""

    def __init__(self, env: dict[str, str], log_dir: Path, port: int) -> None:
        self.env = env
        self.log_dir = log_dir
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        self._processes[name] = subprocess.Popen(
            args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def migrate(self) -> None:
        subprocess.run([str(BIN / "rhythm"), "db", "upgrade"], env=self.env, check=True, capture_output=True)

    def start_api(self) -> None:
        self._spawn("api", [str(BIN / "rhythm"), "serve", "--port", str(self.port)])

    def start_worker(self) -> None:
        # The solo pool: one process that runs the tasks itself, so a SIGKILL kills the task in flight too
        # (prefork would leave an orphaned child finishing it).
        args = [str(BIN / "celery"), "-A", "workers.celery_app", "worker", "--pool", "solo", "-Q", QUEUES]
        args += ["-n", f"sim-{os.getpid()}-{time.monotonic_ns()}@%h", "--without-mingle", "--without-gossip"]
        self._spawn("worker", [*args, "-l", "INFO"])

    def start_beat(self) -> None:
        schedule = self.log_dir / "celerybeat-schedule"
        args = [str(BIN / "celery"), "-A", "workers.celery_app", "beat", "--schedule", str(schedule)]
        self._spawn("beat", [*args, "-l", "INFO"])

    def start(self, timeout: float = 90.0) -> None:
        self.migrate()
        self.start_worker()
        self.start_beat()
        self.start_api()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            api = self._processes["api"]
            if api.poll() is not None:
                raise RuntimeError(f"the API exited ({api.returncode}); see {self.log_dir / 'api.log'}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the API did not answer /healthz within {timeout:.0f} s")

    def kill_worker(self) -> int:
        """SIGKILL the worker (no warm shutdown, the task in flight dies with it); returns its pid."""
        worker = self._processes["worker"]
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        return worker.pid

    def restart_api(self, timeout: float = 90.0) -> None:
        """Stop the API (SIGTERM: uvicorn's graceful shutdown) and start it again."""
        self._stop("api")
        self.start_api()
        self.wait_healthy(timeout)

    def _stop(self, name: str) -> None:
        process = self._processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        for name in ("api", "beat", "worker"):
            self._stop(name)
        for log in self._logs:
            log.close()
        self._logs.clear()

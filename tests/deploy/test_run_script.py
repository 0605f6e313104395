"""``make run`` (``scripts/run.sh``) as a real process: a busy port is refused up front, and a dead worker or
beat is noticed and restarted by its supervise loop.

The supervised stack runs the ``fallback`` policy so that no model is loaded: the script is under test here,
not the model. Its data directory is a temporary folder (RHYTHM_DATA_DIR), never the repository's ./var.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import wait_for_healthz

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "scripts" / "run.sh"

pytestmark = pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "rhythm").exists(), reason="needs make's .venv")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RHYTHM_")}
    return {**env, "RHYTHM_DATA_DIR": str(data_dir), "RHYTHM_PORT": str(port), "PYTHONPATH": str(ROOT)}


def test_a_busy_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [RUN], env=_env(data, port), capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    # Refused at once: no migration, no model load, and no log (of the instance holding the port) touched.
    assert time.monotonic() - started < 10
    assert not data.exists()


def _children(pid: int) -> dict[int, str]:
    """Direct children of ``pid``: their whole command lines.

    ``-ww``: without a terminal ps cuts ``args`` at 80 columns, and under a long checkout path (CI's) the
    ``worker`` / ``beat`` word fell past the cut.
    """
    listed = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True
    )
    return {
        int(line.split(None, 1)[0]): line.split(None, 1)[1]
        for line in listed.stdout.splitlines()
        if line.strip()
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    port = _free_port()
    env = {**_env(tmp_path, port), "RHYTHM_POLICY_BACKEND": "fallback", "RHYTHM_SUPERVISE_EVERY": "1"}
    process = subprocess.Popen(
        [RUN], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        yield process, port, tmp_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_dead_worker_is_reported_and_restarted(stack: tuple[subprocess.Popen[str], int, Path]) -> None:
    process, port, data = stack
    if not wait_for_healthz(f"http://127.0.0.1:{port}", 120):
        pytest.fail("make run did not serve /healthz in time")
    workers = [pid for pid, args in _children(process.pid).items() if " worker " in f"{args} "]
    assert len(workers) == 1, _children(process.pid)
    os.kill(workers[0], signal.SIGKILL)

    deadline = time.monotonic() + 30
    restarted: list[int] = []
    while time.monotonic() < deadline and not restarted:
        time.sleep(0.5)
        restarted = [
            pid
            for pid, args in _children(process.pid).items()
            if " worker " in f"{args} " and pid != workers[0]
        ]
    assert restarted, _children(process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert f"the Celery worker stopped (exit 137, see {data}/worker.log); restarting it." in stderr
    # Stopping make run stops everything, and restarts nothing on the way out.
    assert stderr.count("restarting it") == 1, stderr
    assert process.returncode != 0 or _children(process.pid) == {}

"""The README's second quick-start command, ``make demo``, against a real server process."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from app.benchmarks.api import uvicorn_server
from app.core.config import Settings
from domain import ACTIONS

ROOT = Path(__file__).resolve().parents[2]


def test_demo_script_gets_a_recommendation_from_a_running_service(settings: Settings, tmp_path: Path) -> None:
    admin = secrets.token_urlsafe(32)
    server = uvicorn_server(
        "local", settings.database_url, tmp_path / "server.log", {"RHYTHM_ADMIN_TOKEN": admin}
    )
    with server as (base, _pid):
        port = str(urlsplit(base).port)
        env = {**os.environ, "RHYTHM_PORT": port, "RHYTHM_ADMIN_TOKEN": admin}
        done = subprocess.run(
            [ROOT / "scripts" / "demo.sh"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["action"] in {action.value for action in ACTIONS}
        assert answer["backend"] == "local"

        # stderr names the user and token it made, and a ready-to-paste feedback call that works.
        user_id = re.search(r"Created user (\S+)", done.stderr)
        token = re.search(r"Its token \(shown once\): (\S+)", done.stderr)
        assert user_id and token, done.stderr
        me = httpx.get(f"{base}/v1/users/me", headers={"Authorization": f"Bearer {token[1]}"})
        assert me.json()["user_id"] == user_id[1]
        next_command = next(line.strip() for line in done.stderr.splitlines() if "/v1/feedback" in line)
        feedback = subprocess.run(next_command, shell=True, capture_output=True, text=True, timeout=30)
        assert json.loads(feedback.stdout) == {
            **json.loads(feedback.stdout),
            "recommendation_id": answer["recommendation_id"],
            "reward": 1,
        }

        # RHYTHM_BASE_URL wins over RHYTHM_PORT.
        by_url = subprocess.run(
            [ROOT / "scripts" / "demo.sh"],
            env={**env, "RHYTHM_PORT": "1", "RHYTHM_BASE_URL": base + "/"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert by_url.returncode == 0, by_url.stderr

        # A wrong admin token is a clear failure, not a half-made user.
        env["RHYTHM_ADMIN_TOKEN"] = "not-the-token"
        refused = subprocess.run(
            [ROOT / "scripts" / "demo.sh"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert refused.returncode != 0
        # One sentence with the server's own message, no JSON and no half-made user.
        assert refused.stderr.strip().splitlines() == [
            "make demo: POST /v1/users answered 401: Invalid or revoked token"
        ]
        assert refused.stdout == ""


def test_demo_against_nothing_is_one_sentence() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RHYTHM_PORT": str(port), "RHYTHM_ADMIN_TOKEN": "x" * 32}
    env.pop("RHYTHM_BASE_URL", None)
    done = subprocess.run(
        [ROOT / "scripts" / "demo.sh"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"make demo: nothing answers at http://127.0.0.1:{port}: start it with 'make run', "
        "or point RHYTHM_BASE_URL (or RHYTHM_PORT) at it."
    ]

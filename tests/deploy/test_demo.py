"""The README's second quick-start command, ``make demo``, against a real server process."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from app.core.config import Settings
from app.recommend.bench import uvicorn_server
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

        # A wrong admin token is a clear failure, not a half-made user.
        env["RHYTHM_ADMIN_TOKEN"] = "not-the-token"
        refused = subprocess.run(
            [ROOT / "scripts" / "demo.sh"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert refused.returncode != 0

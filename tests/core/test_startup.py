"""Start-up stays cheap: the app, the CLI and the workers import no heavy module until a command needs it.

Guarded by what is imported, not by timing (timings depend on the machine): torch and transformers (~20 s)
load only when the local backend is built, Alembic only in ``db`` commands, the benchmarks only when run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "alembic", "sim.bench", "app.benchmarks.api", "matplotlib")
# What `rhythm --help` must not import either (issue 10, under 1 s): rich (Typer's help formatting, half the
# time), the logging stack and the settings.
HELP_HEAVY = (*HEAVY, "rich", "structlog", "sqlalchemy", "pydantic_settings")


def _imported_after(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "RHYTHM_ENV": "test"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["app.main", "app.cli", "workers.celery_app", "workers.maintenance"])
def test_importing_loads_no_heavy_module(module: str) -> None:
    assert _imported_after(f"import {module}") == []


def test_help_lists_every_command_without_importing_them() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from app.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    app(['--help'])\n"
        "assert 'bench' in out.getvalue() and 'pretrain' in out.getvalue(), out.getvalue()\n"
    )
    assert _imported_after(code, HELP_HEAVY) == []


def test_a_command_group_still_loads_when_used() -> None:
    code = (
        "import contextlib, io\n"
        "from app.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    app(['bench', '--help'])\n"
        "text = out.getvalue()\n"
        "assert all(name in text for name in ('personalization', 'local-model', 'api')), text\n"
    )
    assert "sim.bench" in _imported_after(code)

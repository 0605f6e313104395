"""Dockerfile, docker-compose.yml and scripts/run.sh only run commands that exist in this package.

No Docker engine runs here, so these tests read the files and check each command against the real CLI:
every ``rhythm …`` command parses (``--help`` appended), every ``celery -A …`` app imports and its
sub-command accepts the given options, and inline Python health checks compile.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery
from typer.testing import CliRunner

from app.cli import app as rhythm_cli

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def check_rhythm(argv: list[str]) -> None:
    result = CliRunner().invoke(rhythm_cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, f"{argv}: {result.output}"


def check_celery(argv: list[str]) -> None:
    app_path = argv[argv.index("-A") + 1]
    module_name, _, attribute = app_path.partition(":")
    module = importlib.import_module(module_name)
    celery_apps = [value for value in vars(module).values() if isinstance(value, Celery)]
    assert celery_apps, f"{module_name} defines no Celery app"
    if attribute:
        assert isinstance(getattr(module, attribute), Celery)
    subcommand = argv[argv.index("-A") + 2]
    assert subcommand in {"worker", "beat", "inspect"}, argv
    if subcommand == "inspect":
        return
    # Celery validates option names before acting on --help, so an unknown option fails here.
    result = subprocess.run(
        [CELERY, *argv[1:], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stderr[-2000:]}"


def check_command(argv: list[str]) -> None:
    program = Path(argv[0]).name
    if program == "rhythm":
        check_rhythm(argv)
    elif program == "celery":
        check_celery(argv)
    elif program in {"python", "python3"} and argv[1] == "-c":
        compile(argv[2], "<healthcheck>", "exec")
    else:
        raise AssertionError(f"unknown program in {argv}")


def healthcheck_argv(test: list[str] | str) -> list[str] | None:
    if isinstance(test, str):
        return shlex.split(test)
    kind, *rest = test
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return shlex.split(rest[0].replace("$$", "$"))
    return None


def test_compose_has_every_service_with_healthchecks() -> None:
    services = compose()["services"]
    assert {"api", "worker", "beat", "postgres", "redis", "vllm"} <= set(services)
    for name in ("api", "worker", "beat", "postgres", "redis", "vllm"):
        assert "test" in services[name].get("healthcheck", {}), f"{name} has no healthcheck"
    assert services["vllm"]["image"].startswith("vllm/vllm-openai:")
    assert services["vllm"]["profiles"] == ["gpu"], "vLLM must be off by default"
    api_env = services["api"]["environment"]
    assert api_env["RHYTHM_ENV"] == "production"
    assert api_env["RHYTHM_BROKER_URL"].startswith("redis://")
    assert api_env["RHYTHM_DATABASE_URL"].startswith("postgresql://")


@pytest.mark.parametrize("service", ["migrate", "api", "worker", "beat"])
def test_compose_commands_exist(service: str) -> None:
    spec = compose()["services"][service]
    assert spec["build"] == "."
    check_command(spec["command"])
    health = spec.get("healthcheck", {})
    if "test" in health:
        argv = healthcheck_argv(health["test"])
        assert argv is not None
        if Path(argv[0]).name in {"rhythm", "celery", "python", "python3"}:
            check_command(argv)


def test_dockerfile_is_slim_non_root_with_healthcheck_and_real_command() -> None:
    instructions = dockerfile_instructions()
    ignored = set((ROOT / ".dockerignore").read_text().split())
    # The build context must not ship the local venv or databases (gigabytes, and secrets in ./var).
    assert {".venv", "var", ".git"} <= ignored
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert keywords.index("USER") < keywords.index("CMD")
    assert "HEALTHCHECK" in keywords
    for keyword, rest in instructions:
        if keyword == "COPY":
            *sources, _target = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                assert source not in ignored, f"COPY {source}: excluded by .dockerignore"
        if keyword == "RUN" and "torch" in rest:
            assert "torch==2.13.0" in rest and "https://download.pytorch.org/whl/cpu" in rest
        if keyword == "CMD":
            check_command(json.loads(rest))
        if keyword == "HEALTHCHECK":
            check_command(json.loads(rest.split("CMD", 1)[1]))


def test_run_script_commands_exist() -> None:
    script = (ROOT / "scripts" / "run.sh").read_text()
    # Indented too: worker and beat start inside the functions the supervise loop restarts them with.
    commands = re.findall(r'^\s*"\$BIN/(rhythm|celery)" ([^>&\n]*)', script, flags=re.MULTILINE)
    assert {program for program, _ in commands} == {"rhythm", "celery"}
    for program, args in commands:
        check_command([program, *shlex.split(args)])


def test_makefile_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "demo", "test", "lint", "vllm-venv"):
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.MULTILINE), target
    assert "scripts/vllm-venv.sh" in makefile

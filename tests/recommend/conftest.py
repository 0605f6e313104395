"""Fixtures of the recommend tests: a real vLLM server (session) and a stand-in HTTP server for failure
modes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.benchmarks.vllm_server import VLLMServer, ensure_venv
from policy.paths import SHIPPED_MODEL_DIR
from tests.recommend.stub_server import StubModelServer


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """vLLM (CPU build) serving the shipped policy model as ``rhythm-policy``; stopped by its PID at the
    end."""
    ensure_venv()
    server = VLLMServer(SHIPPED_MODEL_DIR, tmp_path_factory.mktemp("vllm") / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def spawn_vllm(tmp_path: Path) -> Iterator[Callable[[], VLLMServer]]:
    """Start a private vLLM server (for tests that kill it): ``server = spawn_vllm()``; always stopped."""
    started: list[VLLMServer] = []

    def _spawn() -> VLLMServer:
        ensure_venv()
        server = VLLMServer(SHIPPED_MODEL_DIR, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server.start()

    try:
        yield _spawn
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def stub_server() -> Iterator[StubModelServer]:
    """A local HTTP server on a free port whose answers each test scripts (garbage, 500, valid vLLM
    replies)."""
    server = StubModelServer().start()
    try:
        yield server
    finally:
        server.stop()

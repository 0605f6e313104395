"""Fixtures of the inbox tests: settings with Terra configured, the broker purged of their keys afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.config import Settings
from tests.webhooks.terra import purge_broker, terra_settings


@pytest.fixture
def terra(settings: Settings) -> Iterator[Settings]:
    """Settings with a Terra webhook secret and a broker key prefix of their own (purged at the end)."""
    configured = terra_settings(settings)
    yield configured
    purge_broker(configured)

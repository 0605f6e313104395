"""Calendar fixtures: Google-configured settings (own broker prefix, purged), a clean database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.config import Settings
from tests.calendar.google import google_settings
from tests.webhooks.terra import purge_broker


@pytest.fixture
def google(settings: Settings, clean_database: str) -> Iterator[Settings]:
    configured = google_settings(settings)
    yield configured
    purge_broker(configured)

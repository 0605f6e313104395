"""``Retry-After`` as the provider sends it: seconds, an HTTP date, or something no clock can read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridges.rest import retry_after_seconds

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_seconds_and_http_dates_are_read() -> None:
    assert retry_after_seconds("120", NOW) == 120.0
    assert retry_after_seconds(" 7 ", NOW) == 7.0
    assert retry_after_seconds("Thu, 03 Dec 2026 12:01:30 GMT", NOW) == 90.0
    # A date already past means "now", never a negative wait.
    assert retry_after_seconds("Thu, 03 Dec 2026 11:00:00 GMT", NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "²", "١٢", "12s", "-5", "Thu, 99 Foo 2026"])
def test_a_header_no_clock_can_read_is_no_hint_not_an_error(value: str | None) -> None:
    assert retry_after_seconds(value, NOW) is None

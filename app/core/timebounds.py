"""Timestamps the API accepts: ISO 8601 strings with a UTC offset, within ``max_clock_skew`` of now.

Use :data:`Instant` (or ``Instant | None``) for every request field or query parameter that is a moment in
time (``at``, ``rescheduled_to``, ``from`` / ``to`` filters). It refuses:

* anything but a string in JSON (a number would otherwise be read as Unix seconds or milliseconds, and a
  digit string likewise), and strings that do not start with an ISO 8601 date and time;
* times without an offset (pydantic's ``AwareDatetime``);
* times further than ``RHYTHM_MAX_CLOCK_SKEW`` (default 365 days) from the server's clock. Without the bound,
  year 1 or 9999 overflows the slot and history-window arithmetic (a 500), and nothing legitimate needs it.

The bound is a setting, but pydantic validates bodies without access to the app, so the app publishes its
bound per request in a context variable (:class:`TimeBoundsMiddleware`); outside a request the default holds.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field
from pydantic_core import PydanticCustomError
from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_MAX_CLOCK_SKEW = timedelta(days=365)
# The setting's ceiling: the window then stays thousands of years away from datetime.min / datetime.max, so
# no arithmetic on an accepted instant (zone conversion, whole-day history windows) can overflow.
MAX_CLOCK_SKEW_LIMIT = timedelta(days=3660)

_max_clock_skew: ContextVar[timedelta] = ContextVar("rhythm_max_clock_skew", default=DEFAULT_MAX_CLOCK_SKEW)

# YYYY-MM-DDTHH:MM at least; pydantic parses the rest (seconds, fraction, offset) strictly.
_ISO_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")

BOUND_DESCRIPTION = (
    "ISO 8601 date and time with a UTC offset (`Z` or `±HH:MM`), at most `RHYTHM_MAX_CLOCK_SKEW` "
    "(default 365 days) before or after the server's clock."
)


def current_max_clock_skew() -> timedelta:
    """The bound in force for the request being validated (the default outside a request)."""
    return _max_clock_skew.get()


def allowed_range(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The earliest and latest instant accepted now."""
    now = now or datetime.now(UTC)
    skew = current_max_clock_skew()
    return now - skew, now + skew


def _iso_string_only(value: Any) -> Any:
    # datetime objects come only from Python callers (services, CLI); JSON bodies give str, int, float, bool.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_PREFIX.match(value):
        raise PydanticCustomError(
            "iso8601_required",
            "Input should be an ISO 8601 date-time string with a UTC offset, e.g. 2026-11-24T08:30:00+01:00",
        )
    return value


def _within_bounds(value: datetime) -> datetime:
    earliest, latest = allowed_range()
    if not earliest <= value <= latest:
        raise PydanticCustomError(
            "time_out_of_range",
            "Input should be between {earliest} and {latest} (within {days} days of the server's clock)",
            {
                "earliest": earliest.isoformat(timespec="seconds"),
                "latest": latest.isoformat(timespec="seconds"),
                "days": round(current_max_clock_skew().total_seconds() / 86400, 2),
            },
        )
    return value


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_string_only),
    AfterValidator(_within_bounds),
    Field(json_schema_extra={"format": "date-time"}),
]
"""A moment in time from a client: ISO 8601 string with offset, within the configured skew of now."""


class TimeBoundsMiddleware:
    """Publishes the app's ``max_clock_skew`` to :data:`Instant` validation for the duration of a request."""

    def __init__(self, app: ASGIApp, max_clock_skew: timedelta) -> None:
        self.app = app
        self.max_clock_skew = max_clock_skew

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _max_clock_skew.set(self.max_clock_skew)
        try:
            await self.app(scope, receive, send)
        finally:
            _max_clock_skew.reset(token)

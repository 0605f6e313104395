"""Importing this module registers every webhook provider (one import per ``bridges/<provider>/``)."""

from bridges import terra
from bridges.google import push as google_calendar
from bridges.google import teardown as google_teardown

__all__ = ["google_calendar", "google_teardown", "terra"]

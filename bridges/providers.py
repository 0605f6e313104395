"""Importing this module registers every webhook provider (one import per ``bridges/<provider>/``)."""

from bridges import garmin, google_health, oura, terra, whoop
from bridges.google import push as google_calendar
from bridges.google import teardown as google_teardown

__all__ = ["terra"]
__all__ += ["garmin", "google_health", "oura", "whoop"]
__all__ += ["google_calendar", "google_teardown"]

"""Importing this module registers every webhook provider (one import per ``bridges/<provider>/``)."""

from bridges import garmin, google_health, oura, terra, whoop

__all__ = ["terra"]
__all__ += ["garmin", "google_health", "oura", "whoop"]

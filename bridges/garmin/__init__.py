"""Garmin Health API push (existing developer credentials only, or through Terra): unsigned data deliveries
authenticated by a secret path segment and the user's known Garmin id (bridges.md §2.3)."""

from bridges.garmin.provider import GarminProvider

__all__ = ["GarminProvider"]

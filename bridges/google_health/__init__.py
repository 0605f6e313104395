"""Google Health API v4 (Fitbit's successor): notify-only webhooks authenticated by the echoed bearer secret,
then REST reads of the changed data points (bridges.md §2.4b)."""

from bridges.google_health.provider import GoogleHealthProvider

__all__ = ["GoogleHealthProvider"]

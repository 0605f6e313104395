"""WHOOP API v2: notify-only webhooks (base64 HMAC over timestamp ‖ body), then REST reads (§2.1)."""

from bridges.whoop.provider import WhoopProvider

__all__ = ["WhoopProvider"]

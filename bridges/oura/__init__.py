"""Oura API v2: notify-only webhooks (hex HMAC over timestamp ‖ body, a GET verification challenge), then REST
fetches; subscriptions expire and are renewed (bridges.md §2.2)."""

from bridges.oura.provider import OuraProvider

__all__ = ["OuraProvider"]

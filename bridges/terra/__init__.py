"""Terra (aggregator): signed data webhooks for many wearables; ``reference_id`` = our user id (§2.6)."""

from bridges.terra.provider import TerraProvider

__all__ = ["TerraProvider"]

"""Pulls from the wearables' REST APIs: backfill on link, the daily reconcile, Oura's subscriptions."""

"""Meters: snapshots of a user's five meters, recomputed from their readings by the bridge's engine."""

"""Recommendations: the policy backends, the recommend endpoint and its propensity log."""

"""Feedback: the person's answer to a recommendation, which is the policy's reward."""

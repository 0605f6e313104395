"""Benchmarks of the service as a whole (``rhythm bench api``); domain packages keep none of their own."""

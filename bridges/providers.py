"""Importing this module registers every webhook provider (one import per ``bridges/<provider>/``)."""

from bridges import terra

__all__ = ["terra"]

"""Faust agents: thin wiring around the pure functions in :mod:`models`."""

from agents import changes

__all__ = ["changes"]

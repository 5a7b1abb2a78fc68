"""Faust agents: thin wiring around the pure functions in :mod:`models`."""

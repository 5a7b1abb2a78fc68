"""Faust wiring: the change agent, its timers and the web views; thin around :mod:`app` and :mod:`models`."""

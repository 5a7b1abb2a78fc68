"""The wall clock in the units Cassandra writes: microseconds since the epoch."""

from __future__ import annotations

import time


def now_us() -> int:
    """Now in microseconds since the epoch: a CQL write timestamp, a ``source.ts_us``."""
    return time.time_ns() // 1000

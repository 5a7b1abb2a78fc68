"""The rate pacer of ``cdc demo``'s write generator (the benchmarks pace their writes with it too)."""

from __future__ import annotations

import time
from collections.abc import Iterator


def paced(count: int, rate: float) -> Iterator[int]:
    """Yield ``0 .. count - 1``, sleeping so that ``i`` comes no earlier than ``i / rate`` s after the start."""
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield i

"""Where a batch's time goes: the applier reports the wall time of each stage to an observer.

The worker's observer feeds the ``cdc_batch_stage_seconds`` histogram (``stage`` label), which operators and
the benchmark (``bench/pipeline.py``) read; tests and other callers pass nothing and pay one clock read per
stage and batch. Stages of :meth:`app.sink.applier.Applier.prepare`: ``decode``; of ``commit``: ``lock``,
``load``, ``plan``, ``readback``, ``write``, ``ledger`` (dead letters and offsets) and ``commit`` (the
transaction's COMMIT).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

StageObserver = Callable[[str, float], None]
"""``(stage, seconds)``."""


def ignore(stage: str, seconds: float) -> None:
    """The default observer: nothing is recorded."""


@contextmanager
def timed(observe: StageObserver, stage: str) -> Iterator[None]:
    """Report the wall time of the ``with`` block as ``stage`` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observe(stage, time.perf_counter() - started)

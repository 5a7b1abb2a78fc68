"""Where a batch's time goes: the applier reports the wall time of each stage to an observer.

The worker's observer feeds the ``cdc_batch_stage_seconds`` histogram (``stage`` label), which operators and
the benchmark (``bench/pipeline.py``) read; tests and other callers pass nothing and pay one clock read per
stage and batch. Stages of :meth:`app.sink.applier.Applier.prepare`: ``decode``; of ``commit``: ``lock``,
``load``, ``plan``, ``readback``, ``write``, ``ledger`` (dead letters and offsets) and ``commit`` (the
transaction's COMMIT). Each stage is also a span (``cdc.stage.<stage>``), a child of the batch's span
(``app.tracing``; a no-op while tracing is off).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import trace

from app.tracing import tracer

_tracer = tracer()  # a proxy: the provider app.tracing installs, once it does

StageObserver = Callable[[str, float], None]
"""``(stage, seconds)``."""


def ignore(stage: str, seconds: float) -> None:
    """The default observer: nothing is recorded."""


def stage_span(stage: str) -> trace.Span:
    """The span of a stage that no ``with`` block covers (the caller ends it)."""
    return _tracer.start_span(f"cdc.stage.{stage}")


@contextmanager
def timed(observe: StageObserver, stage: str) -> Iterator[None]:
    """Report the wall time of the ``with`` block as ``stage`` (also when it raises), in a span of its own."""
    started = time.perf_counter()
    try:
        with _tracer.start_as_current_span(f"cdc.stage.{stage}"):
            yield
    finally:
        observe(stage, time.perf_counter() - started)

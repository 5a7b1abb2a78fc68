"""OpenTelemetry tracing: a span per batch with a child per stage (decode, lock, load, plan, readback, write,
ledger, commit), and one per DLQ replay, reconciliation and backfill job (``app.logging.add_trace_ids`` puts
``trace_id``/``span_id`` in every log line written inside a span).

Off by default (``tracing.enabled``): the API's no-op tracer then costs next to nothing. On, every span is
recorded and :class:`ErrorsAndRatio` decides per trace once its root ends: a trace with a failed span is
always exported, the others at ``tracing.success_ratio`` (the plan: 100 % of errors, 10 % of successes).
The exporter is OTLP over HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint,
headers, certificate); ``OTEL_SERVICE_NAME`` names the service (default ``cass-cdc-pg``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, TypeVar, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import StatusCode

from app.settings import TracingSettings
from models.batch import Outcome, Record

TRACER = "cass-cdc-pg"
TRACE_ID_MASK = (1 << 64) - 1


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER)


F = TypeVar("F", bound=Callable[..., Any])


def traced(name: str) -> Callable[[F], F]:
    """Decorator: each call of the function (sync or async) runs in a span ``name`` of its own."""
    return cast(Callable[[F], F], tracer().start_as_current_span(name))


def annotate(**attributes: Any) -> None:
    """Attributes on the current span (``cdc.`` prefixed; a no-op outside one or with tracing off)."""
    current = trace.get_current_span()
    for key, value in attributes.items():
        current.set_attribute(f"cdc.{key}", value)


def batch_span(records: Sequence[Record]) -> trace.Span:
    """The span of one batch, from its decode to its commit (ended by the caller)."""
    span = tracer().start_span("cdc.batch")
    if span.is_recording():  # tracing off: no pass over the records on the hot path
        span.set_attribute("cdc.events", len(records))
        span.set_attribute("cdc.partitions", sorted({f"{r.topic}:{r.partition}" for r in records}))
    return span


def batch_outcome(span: trace.Span, outcome: Outcome | None) -> None:
    """What the batch did, on its span; dead letters mark it failed (so its trace is always exported)."""
    if outcome is None:
        span.set_attribute("cdc.fenced", True)
        return
    span.set_attribute("cdc.skipped", outcome.skipped)
    span.set_attribute("cdc.dead_letters", len(outcome.dead_letters))
    if outcome.dead_letters:
        reasons = sorted({letter.reason for letter in outcome.dead_letters})
        span.set_status(StatusCode.ERROR, f"{len(outcome.dead_letters)} dead letters: {', '.join(reasons)}")


RETRY_EVENT = "cdc.retry"


def retried(what: str, error: BaseException, attempt: int) -> None:
    """A transient or systemic failure retried, on the current span (the batch's): its trace is exported."""
    trace.get_current_span().add_event(
        RETRY_EVENT,
        {"cdc.what": what, "cdc.attempt": attempt, "exception.type": type(error).__name__},
    )


def failed(spans: Sequence[ReadableSpan]) -> bool:
    """Did anything in these spans fail: an error status, or a retried failure?"""
    return any(
        s.status.status_code is StatusCode.ERROR or any(e.name == RETRY_EVENT for e in s.events)
        for s in spans
    )


def sampled(trace_id: int, ratio: float) -> bool:
    """The ratio decision of OpenTelemetry's ``TraceIdRatioBased`` (the low 64 bits of the trace id)."""
    return (trace_id & TRACE_ID_MASK) < round(ratio * (TRACE_ID_MASK + 1))


class ErrorsAndRatio(SpanProcessor):
    """Holds each trace's ended spans until its root ends, then hands the whole trace to ``delegate`` when one
    of its spans failed (:func:`failed`) or its trace id falls within ``ratio``; otherwise drops it. At most ``max_traces``
    unfinished traces are held (the oldest is dropped beyond that)."""

    def __init__(self, delegate: SpanProcessor, ratio: float, max_traces: int = 10_000) -> None:
        self.delegate, self.ratio, self.max_traces = delegate, ratio, max_traces
        self._open: MutableMapping[int, list[ReadableSpan]] = OrderedDict()
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do until the span ends."""

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        with self._lock:
            held = self._open.setdefault(context.trace_id, [])
            held.append(span)
            if span.parent is not None and not span.parent.is_remote:
                if len(self._open) > self.max_traces:
                    self._open.pop(next(iter(self._open)))
                return
            del self._open[context.trace_id]
        if sampled(context.trace_id, self.ratio) or any(
            s.status.status_code is StatusCode.ERROR for s in held
        ):
            for finished in held:
                self.delegate.on_end(finished)

    def shutdown(self) -> None:
        self.delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.delegate.force_flush(timeout_millis)


def provider(settings: TracingSettings, exporter: SpanExporter) -> TracerProvider:
    """A tracer provider recording every span, exporting through ``exporter`` by :class:`ErrorsAndRatio`."""
    name = os.environ.get("OTEL_SERVICE_NAME") or TRACER
    made = TracerProvider(resource=Resource.create({"service.name": name}))
    made.add_span_processor(ErrorsAndRatio(BatchSpanProcessor(exporter), settings.success_ratio))
    return made


def configure(settings: TracingSettings) -> TracerProvider | None:
    """Install the global tracer provider when tracing is on (once per process); None when off."""
    if not settings.enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    made = provider(settings, OTLPSpanExporter())
    trace.set_tracer_provider(made)
    return made

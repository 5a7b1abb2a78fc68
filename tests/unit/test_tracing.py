"""app.tracing with the OpenTelemetry SDK's in-memory exporter: a batch's span tree (the batch, a child per
stage) through the real runtime and batch loop, its attributes, retries and dead letters marking the trace,
the errors-always / successes-at-a-ratio export, and ``trace_id`` in the batch's log lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import StatusCode

from agents import changes
from app import tracing
from app.logging import add_trace_ids, configure_logging
from app.settings import TracingSettings
from models.batch import Record
from tests.unit.test_agents_changes import CommitConsumer
from tests.unit.test_runtime import FlakyStore, insert, runtime_with

EXPORTER = InMemorySpanExporter()
PROCESSOR = tracing.ErrorsAndRatio(SimpleSpanProcessor(EXPORTER), ratio=1.0)


@pytest.fixture(scope="module", autouse=True)
def global_provider() -> None:
    """The process's tracer provider (set once: OpenTelemetry refuses a second one)."""
    made = TracerProvider()
    made.add_span_processor(PROCESSOR)
    trace.set_tracer_provider(made)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    EXPORTER.clear()
    PROCESSOR.ratio = 1.0
    yield EXPORTER
    PROCESSOR.ratio = 1.0


def run_batches(records: list[list[Record]], failures: int = 0) -> None:
    FlakyStore.failures = failures
    runtime, _, _ = runtime_with(FlakyStore())
    queue = list(records)

    async def take() -> list[Record]:
        return queue.pop(0)

    consumer = CommitConsumer()
    consumer.committed = []
    asyncio.run(changes.run_batches(runtime, consumer, take, len(records)))


def test_a_batch_is_a_span_with_a_child_per_stage_and_its_attributes(
    spans: InMemorySpanExporter, capsys: Any
) -> None:
    import structlog

    saved = structlog.get_config()
    configure_logging("DEBUG", "json")  # the runtime's "batch committed" line is at DEBUG
    structlog.configure(cache_logger_on_first_use=False)  # no logger keeps pytest's captured stderr
    try:
        run_batches([[insert(0, 1), insert(1, 2)]])
    finally:
        structlog.configure(**saved)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finished = spans.get_finished_spans()
    [batch] = [s for s in finished if s.name == "cdc.batch"]
    assert batch.parent is None
    assert batch.attributes is not None
    assert (batch.attributes["cdc.events"], batch.attributes["cdc.dead_letters"]) == (2, 0)
    assert list(batch.attributes["cdc.partitions"]) == ["cdc.ks.t:0"]  # type: ignore[arg-type]
    children = [s for s in finished if s.parent is not None and s.parent.span_id == batch.context.span_id]
    stages = {s.name.removeprefix("cdc.stage.") for s in children}
    assert {"decode", "lock", "load", "plan", "write", "ledger", "commit"} <= stages, stages
    assert {s.context.trace_id for s in finished} == {batch.context.trace_id}
    assert batch.status.status_code is not StatusCode.ERROR
    [committed] = [line for line in lines if line["event"] == "batch committed"]
    assert committed["trace_id"] == f"{batch.context.trace_id:032x}"  # the batch's log line, in its trace


def test_with_no_success_exported_a_retried_batch_still_is_and_a_clean_one_is_not(
    spans: InMemorySpanExporter,
) -> None:
    PROCESSOR.ratio = 0.0
    run_batches([[insert(0, 1)]])
    assert spans.get_finished_spans() == ()
    run_batches([[insert(0, 1)]], failures=1)  # PostgreSQL drops the connection once: retried
    finished = spans.get_finished_spans()
    [batch] = [s for s in finished if s.name == "cdc.batch"]
    [retry] = [e for e in batch.events if e.name == tracing.RETRY_EVENT]
    assert retry.attributes is not None
    assert (retry.attributes["cdc.what"], retry.attributes["exception.type"]) == ("apply", "OperationalError")
    failed_write = [
        s for s in finished if s.name == "cdc.stage.write" and s.status.status_code is StatusCode.ERROR
    ]
    assert failed_write, "the failed stage is in the trace with its error"


def test_a_batch_with_dead_letters_is_a_failed_span(spans: InMemorySpanExporter) -> None:
    PROCESSOR.ratio = 0.0
    broken = Record("cdc.ks.t", 0, 0, b'{"id": 1}', b"{not json")
    run_batches([[broken, insert(1, 2)]])
    [batch] = [s for s in spans.get_finished_spans() if s.name == "cdc.batch"]
    assert batch.status.status_code is StatusCode.ERROR
    assert batch.status.description is not None
    assert batch.status.description.startswith("1 dead letters: ")


def test_the_ratio_follows_opentelemetrys_trace_id_rule() -> None:
    for ratio in (0.0, 0.1, 0.5, 1.0):
        bound = TraceIdRatioBased(ratio).bound
        for trace_id in (0, 1, bound - 1, bound, (1 << 64) - 1, (7 << 64) + bound - 1):
            assert tracing.sampled(trace_id, ratio) == ((trace_id & tracing.TRACE_ID_MASK) < bound)


def test_the_provider_exports_about_the_ratio_of_clean_traces_and_every_failed_one() -> None:
    exporter = InMemorySpanExporter()
    made = tracing.provider(TracingSettings(enabled=True, success_ratio=0.1), exporter)
    tracer = made.get_tracer("test")
    for i in range(2000):
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("child") as child:
            if i % 100 == 0:
                child.set_status(StatusCode.ERROR, "boom")
    made.force_flush()
    roots = [s for s in exporter.get_finished_spans() if s.name == "root"]
    failed = [s for s in exporter.get_finished_spans() if s.status.status_code is StatusCode.ERROR]
    assert len(failed) == 20  # every failed trace
    assert 20 + 120 < len(roots) < 20 + 290, len(roots)  # ~10 % of the 1,980 clean ones (binomial, ±5 sd)
    assert len(exporter.get_finished_spans()) == 2 * len(roots)  # whole traces only
    assert made.resource.attributes["service.name"] == "cass-cdc-pg"
    made.shutdown()


def test_unfinished_traces_held_are_bounded() -> None:
    exporter = InMemorySpanExporter()
    processor = tracing.ErrorsAndRatio(SimpleSpanProcessor(exporter), ratio=1.0, max_traces=5)
    made = TracerProvider()
    made.add_span_processor(processor)
    tracer = made.get_tracer("test")
    roots = [tracer.start_span("root") for _ in range(20)]
    for root in roots:
        with trace.use_span(root, end_on_exit=False), tracer.start_as_current_span("child"):
            pass
    assert len(processor._open) == 5  # the children of 20 open roots: only the newest 5 traces kept


def test_log_lines_inside_a_span_carry_its_ids_and_outside_none(capsys: Any) -> None:
    import structlog

    saved = structlog.get_config()
    configure_logging("INFO", "json")  # prints to pytest's captured stderr: restored below
    structlog.configure(cache_logger_on_first_use=False)
    try:
        log = structlog.get_logger("test")
        with tracing.tracer().start_as_current_span("cdc.test") as current:
            log.info("inside")
        log.info("outside")
    finally:
        structlog.configure(**saved)
    inside, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines()[-2:])
    context = current.get_span_context()
    assert (inside["trace_id"], inside["span_id"]) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert "trace_id" not in outside
    assert add_trace_ids(None, "info", {}) == {}


def test_tracing_is_off_by_default_and_configure_then_installs_nothing() -> None:
    assert TracingSettings().enabled is False
    assert tracing.configure(TracingSettings()) is None


def test_replay_reconciliation_and_backfill_jobs_each_run_in_a_span_of_their_own(
    spans: InMemorySpanExporter,
) -> None:
    from app.backfill import runner
    from app.reconcile import jobs
    from app.settings import load_settings
    from tests.unit.test_replay_job import FakeReplayer
    from tests.unit.test_replay_job import run as run_replay

    run_replay(FakeReplayer([(10, 0)]))
    # No PostgreSQL on port 1: each job fails at its first query, inside its span.
    settings = load_settings(postgres={"dsn": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"})
    with pytest.raises(Exception, match=r"127\.0\.0\.1"):
        jobs.run(settings, ["ks.t"], jobs.JobOptions())
    with pytest.raises(Exception, match=r"127\.0\.0\.1"):
        runner.run(settings, 42)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    replay = by_name["cdc.dlq.replay.job"]
    assert replay.attributes is not None
    assert replay.attributes["cdc.job_id"] == 7
    for name in ("cdc.reconcile.job", "cdc.backfill.job"):
        assert by_name[name].status.status_code is StatusCode.ERROR, name
        assert by_name[name].parent is None

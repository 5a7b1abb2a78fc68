"""The cost of tracing: the same table and the same pre-loaded events, applied by a worker with tracing off
and on at the default ratio (every span recorded, 10 % of the clean traces exported), in one run (issue:
at most 5 % overhead).

The exporter sends OTLP over HTTP to a sink in this process (it answers every POST with 200 and counts what
it got), so the export's serialisation and requests are paid as with a real collector. Each repetition runs
both variants over the same topic in alternating order, each on a fresh mirror; the ratio is taken per
repetition, then its median.

A second, CPU-only figure: one batch's spans (the batch and its 8 stages) with the SDK at the default ratio
against the API's no-op tracer, timed in this process.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import Services, header, machine_info, now_iso, quiet_logging
from bench.events import ROWS, SCALAR
from bench.pipeline import BATCH, Case, _median, _ratio, compare_variants, variant_rows
from stack.config import Settings

N_EVENTS = int(os.environ.get("BENCH_TRACING_EVENTS", "60000"))
REPEATS = int(os.environ.get("BENCH_TRACING_REPEATS", "3"))
TARGET_RATIO = 0.95
RATIO = 0.1
CASE = Case("tracing", "9 scalars", SCALAR, N_EVENTS)
STAGES = ("decode", "lock", "load", "plan", "readback", "write", "ledger", "commit")


class Sink(ThreadingHTTPServer):
    """An OTLP/HTTP receiver that keeps nothing: counts requests and bytes."""

    requests = 0
    received = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(size)
        server = self.server
        assert isinstance(server, Sink)
        server.requests += 1
        server.received += size
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def span_cost(batches: int = 20_000, repeats: int = 5) -> dict[str, Any]:
    """µs per batch of its spans: the SDK at the default ratio (exporting to nothing) against no-op."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from app import tracing
    from app.settings import TracingSettings

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    def timed(tracer: trace.Tracer) -> float:
        started = time.perf_counter()
        for _ in range(batches):
            with tracer.start_as_current_span("cdc.batch"):
                for stage in STAGES:
                    with tracer.start_as_current_span(f"cdc.stage.{stage}"):
                        pass
        return (time.perf_counter() - started) / batches

    provider = tracing.provider(TracingSettings(enabled=True, success_ratio=RATIO), Discard())
    noop, sdk = trace.NoOpTracer(), provider.get_tracer("bench")
    off, on = [], []
    for _ in range(repeats):
        off.append(timed(noop))
        on.append(timed(sdk))
    provider.shutdown()
    o, n = statistics.median(off), statistics.median(on)
    return {"batches": batches, "off_us_per_batch": round(o * 1e6, 2), "on_us_per_batch": round(n * 1e6, 2)}


def run() -> dict[str, Any]:
    quiet_logging()
    s = Settings.from_env()
    keyspace = f"bench_tracing_{uuid.uuid4().hex[:6]}"
    sink = Sink((s.host, 0), Handler)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    traced = {
        "CDC_TRACING__ENABLED": "true",
        "CDC_TRACING__SUCCESS_RATIO": str(RATIO),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{s.host}:{sink.server_address[1]}",
    }
    try:
        with Services(["postgres", "kafka", "cassandra", "debezium"], s):
            reps = compare_variants(s, CASE, keyspace, {"off": None, "on": traced}, REPEATS)
    finally:
        sink.shutdown()
    ratios = [_ratio(r["on"]["events_per_s"], r["off"]["events_per_s"]) for r in reps]
    ratio = _median(ratios)
    return {
        "benchmark": "tracing",
        "date": now_iso(),
        "machine": machine_info(s),
        "parameters": {"repeats": REPEATS, "events": N_EVENTS, "rows": ROWS, "worker_batch_size": BATCH},
        "medians": {
            "off_events_per_s": _median([r["off"]["events_per_s"] for r in reps]),
            "on_events_per_s": _median([r["on"]["events_per_s"] for r in reps]),
            "on_to_off_ratio": ratio,
            "all_ratios": ratios,
        },
        "exported": {"requests": sink.requests, "bytes": sink.received},
        "span_cost": span_cost(),
        "target": {"on_to_off_ratio": TARGET_RATIO, "met": ratio is not None and ratio >= TARGET_RATIO},
        "repetitions": reps,
    }


def markdown(result: dict[str, Any]) -> str:
    m, reps = result["medians"], result["repetitions"]
    verdict = "met" if result["target"]["met"] else "NOT met"
    cost = result["span_cost"]
    lines = header(result)
    lines += [
        f"Medians of {len(reps)} repetitions in one run; in each, both variants over the same pre-loaded topic "
        "(order alternating), each on a fresh mirror. Every repetition in tracing.json. Tracing on: every "
        f"span recorded, {RATIO:.0%} of the clean traces exported over OTLP/HTTP to a local sink "
        f"({result['exported']['requests']} requests, {result['exported']['bytes']} bytes in all).",
        "",
        *variant_rows("tracing", ("off", "on"), m, reps),
    ]
    lines += [
        "",
        f"On / off, per repetition: {', '.join(str(x) for x in m['all_ratios'])}; median "
        f"**{m['on_to_off_ratio']}** (target >= {TARGET_RATIO}, i.e. at most 5 % overhead: {verdict}).",
        "",
        f"CPU only, in this process (medians of 5 passes of {cost['batches']} batches): one batch's 9 spans "
        f"cost {cost['on_us_per_batch']} µs with the SDK, {cost['off_us_per_batch']} µs with tracing off; "
        f"at {BATCH} events a batch that is "
        f"{round((cost['on_us_per_batch'] - cost['off_us_per_batch']) / BATCH, 3)} µs an event.",
        "",
    ]
    return "\n".join(lines)

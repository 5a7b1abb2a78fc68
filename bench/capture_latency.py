"""Capture latency of the Debezium Cassandra agent at fixed write rates, against a plain-Kafka baseline.

For each rate, rate-controlled ``execute_async`` inserts (bounded in-flight) with ``USING TIMESTAMP <now µs>``
go to a ``cdc = true`` table in a private keyspace; the agent's topic is created beforehand with
``message.timestamp.type=LogAppendTime``, so

    capture latency = Kafka append time (record timestamp, ms) - source.ts_us / 1000

Also reported: consume latency (time the benchmark's consumer received the record - source.ts_us / 1000).
Baseline, same rate and duration: a plain aiokafka producer (acks=all, idempotent, linger 0, like the agent's
producer) stamps its send time in µs into each record; append and consume latency are measured the same way,
so ``agent / baseline`` shows the agent's share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.clock import now_us
from app.demo.pacing import paced
from app.testing import create_keyspace, create_topics, delete_topics
from bench.common import Services, header, machine_info, now_iso, quiet_logging, summary
from bench.kafka_tools import Collector
from stack.config import Settings

RATES = (100, 500, 1000)
DURATION_S = 20.0
MAX_IN_FLIGHT = 256
DRAIN_TIMEOUT_S = 30.0
REGISTER_TIMEOUT_S = 120.0
PAYLOAD = "x" * 100
TARGET = {"rate": 1000, "p95_ms": 1000.0}
TABLE = "writes"


@dataclass
class Received:
    """Per phase: first arrival of each sequence number, plus a duplicate count."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    first: dict[str, dict[int, tuple[float, float]]] = field(
        default_factory=dict
    )  # (append lat, consume lat)
    duplicates: dict[str, int] = field(default_factory=dict)

    def add(self, phase: str, seq: int, source_us: int, append_ms: float, received_ms: float) -> None:
        lat = (append_ms - source_us / 1000, received_ms - source_us / 1000)
        with self.lock:
            seen = self.first.setdefault(phase, {})
            if seq in seen:
                self.duplicates[phase] = self.duplicates.get(phase, 0) + 1
            else:
                seen[seq] = lat

    def count(self, phase: str) -> int:
        with self.lock:
            return len(self.first.get(phase, {}))

    def latencies(self, phase: str) -> tuple[list[float], list[float]]:
        with self.lock:
            values = list(self.first.get(phase, {}).values())
        return [a for a, _ in values], [c for _, c in values]


def wait_count(received: Received, phase: str, expected: int, timeout: float) -> float:
    """Wait until ``expected`` distinct records of ``phase`` arrived; returns the seconds waited."""
    start = time.monotonic()
    while received.count(phase) < expected and time.monotonic() - start < timeout:
        time.sleep(0.1)
    return time.monotonic() - start


# --- the agent path ---------------------------------------------------------------------------------


class Writer:
    """Rate-controlled async inserts with bounded in-flight requests."""

    def __init__(self, session: Any, prepared: Any) -> None:
        self.session, self.prepared = session, prepared
        self.lock = threading.Lock()
        self.sem = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self.ok = self.failed = 0
        self.last_done = 0.0
        self.errors: list[str] = []

    def _ok(self, _: Any) -> None:
        with self.lock:
            self.ok += 1
            self.last_done = time.perf_counter()
        self.sem.release()

    def _err(self, exc: BaseException) -> None:
        with self.lock:
            self.failed += 1
            self.last_done = time.perf_counter()
            if len(self.errors) < 5:
                self.errors.append(repr(exc))
        self.sem.release()

    def run(self, phase: str, rate: int, duration: float) -> dict[str, Any]:
        n = int(rate * duration)
        t0 = time.perf_counter()
        for i in paced(n, rate):
            self.sem.acquire()
            future = self.session.execute_async(self.prepared, (phase, i, PAYLOAD, now_us()))
            future.add_callbacks(self._ok, self._err)
        for _ in range(MAX_IN_FLIGHT):  # wait for every in-flight request
            self.sem.acquire()
        for _ in range(MAX_IN_FLIGHT):
            self.sem.release()
        elapsed = self.last_done - t0
        return {
            "written": self.ok,
            "failed": self.failed,
            "errors": self.errors,
            "achieved_rate": round(self.ok / elapsed, 1) if elapsed > 0 else None,
        }


def agent_phases(s: Settings, rates: tuple[int, ...], duration: float) -> dict[int, dict[str, Any]]:
    from cassandra.cluster import Cluster

    logging.getLogger("cassandra").setLevel(logging.ERROR)
    ks = f"bench_capture_{uuid.uuid4().hex[:8]}"
    topic = f"{s.topic_prefix}.{ks}.{TABLE}"
    received = Received()

    def on_record(r: Any, received_ms: float) -> None:
        if r.value is None:
            return
        key, value = json.loads(r.key), json.loads(r.value)
        received.add(key["phase"], key["i"], value["source"]["ts_us"], r.timestamp, received_ms)

    cluster = Cluster([s.host], port=s.cassandra_port, connect_timeout=10)
    session = cluster.connect()
    session.default_timeout = 30
    collector: Collector | None = None
    try:
        create_keyspace(session, ks)
        create_topics(s.kafka_bootstrap, [topic], log_append_time=True)
        time.sleep(3)  # the agent misses a table created in the same schema refresh as its keyspace
        session.execute(
            f"CREATE TABLE {ks}.{TABLE} (phase text, i int, payload text, PRIMARY KEY ((phase, i))) "
            "WITH cdc = true"
        )
        collector = Collector(s.kafka_bootstrap, topic, on_record)
        collector.start_and_wait()
        register_table(session, ks, received)
        prepared = session.prepare(
            f"INSERT INTO {ks}.{TABLE} (phase, i, payload) VALUES (?, ?, ?) USING TIMESTAMP ?"
        )
        out: dict[int, dict[str, Any]] = {}
        for rate in rates:
            phase = f"r{rate}"
            print(f"  agent: {rate} writes/s for {duration:.0f}s ...", flush=True)
            w = Writer(session, prepared).run(phase, rate, duration)
            waited = wait_count(received, phase, w["written"], DRAIN_TIMEOUT_S)
            append, consume = received.latencies(phase)
            out[rate] = {
                **w,
                "received": len(append),
                "duplicates": received.duplicates.get(phase, 0),
                "drain_wait_s": round(waited, 1),
                "capture_ms": summary(append),
                "consume_ms": summary(consume),
            }
            print(f"    {json.dumps(out[rate])}", flush=True)
        out_non_append = collector.non_append_time
        if out_non_append:
            raise RuntimeError(f"{out_non_append} records of {topic} are not LogAppendTime")
        return out
    finally:
        if collector is not None:
            collector.stop()
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        cluster.shutdown()
        with contextlib.suppress(Exception):  # best-effort cleanup
            delete_topics(s.kafka_bootstrap, [topic])


def register_table(session: Any, ks: str, received: Received) -> None:
    """Write probe rows (again every 5 s) until one arrives: the agent has registered the table."""
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    n = 0
    while time.monotonic() < deadline:
        session.execute(f"INSERT INTO {ks}.{TABLE} (phase, i, payload) VALUES ('probe', %s, 'p')", (n,))
        n += 1
        wait_count(received, "probe", 1, 5.0)
        if received.count("probe"):
            return
    raise RuntimeError(f"the agent did not capture {ks}.{TABLE} within {REGISTER_TIMEOUT_S:.0f}s")


# --- the baseline: plain producer -> Kafka -> consumer ----------------------------------------------


async def produce(bootstrap: str, topic: str, phase: str, rate: int, duration: float) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0)
    await producer.start()
    sem = asyncio.Semaphore(MAX_IN_FLIGHT)
    ok = failed = 0
    last = 0.0

    def done(fut: asyncio.Future[Any]) -> None:
        nonlocal ok, failed, last
        if fut.cancelled() or fut.exception() is not None:
            failed += 1
        else:
            ok += 1
        last = time.perf_counter()
        sem.release()

    try:
        n = int(rate * duration)
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            key = json.dumps({"phase": phase, "i": i}).encode()
            value = json.dumps({"source": {"ts_us": now_us()}, "payload": PAYLOAD}).encode()
            fut = await producer.send(topic, value, key=key)
            fut.add_done_callback(done)
        await producer.flush()
        for _ in range(MAX_IN_FLIGHT):
            await sem.acquire()
    finally:
        await producer.stop()
    elapsed = last - t0
    return {"written": ok, "failed": failed, "achieved_rate": round(ok / elapsed, 1) if elapsed > 0 else None}


def baseline_phases(s: Settings, rates: tuple[int, ...], duration: float) -> dict[int, dict[str, Any]]:
    topic = f"bench_baseline_{uuid.uuid4().hex[:8]}"
    received = Received()

    def on_record(r: Any, received_ms: float) -> None:
        key, value = json.loads(r.key), json.loads(r.value)
        received.add(key["phase"], key["i"], value["source"]["ts_us"], r.timestamp, received_ms)

    create_topics(s.kafka_bootstrap, [topic], log_append_time=True)
    collector = Collector(s.kafka_bootstrap, topic, on_record)
    collector.start_and_wait()
    out: dict[int, dict[str, Any]] = {}
    try:
        for rate in rates:
            phase = f"r{rate}"
            print(f"  baseline: {rate} records/s for {duration:.0f}s ...", flush=True)
            p = asyncio.run(produce(s.kafka_bootstrap, topic, phase, rate, duration))
            wait_count(received, phase, p["written"], DRAIN_TIMEOUT_S)
            append, consume = received.latencies(phase)
            out[rate] = {
                **p,
                "received": len(append),
                "duplicates": received.duplicates.get(phase, 0),
                "append_ms": summary(append),
                "consume_ms": summary(consume),
            }
            print(f"    {json.dumps(out[rate])}", flush=True)
    finally:
        collector.stop()
        with contextlib.suppress(Exception):  # best-effort cleanup
            delete_topics(s.kafka_bootstrap, [topic])
    return out


def ratio(a: float | int | None, b: float | int | None) -> float | None:
    return round(a / b, 1) if a is not None and b else None


def run(rates: tuple[int, ...] = RATES, duration: float = DURATION_S) -> dict[str, Any]:
    quiet_logging()
    s = Settings.from_env()
    with Services(["kafka", "cassandra", "debezium"], s):
        agent = agent_phases(s, rates, duration)
        base = baseline_phases(s, rates, duration)
    rows = []
    for rate in rates:
        a, b = agent[rate], base[rate]
        rows.append(
            {
                "rate": rate,
                "agent": a,
                "baseline": b,
                "ratio_capture_to_baseline_append": {
                    q: ratio(a["capture_ms"][q], b["append_ms"][q]) for q in ("p50", "p95")
                },
                "ratio_consume_to_baseline_consume": {
                    q: ratio(a["consume_ms"][q], b["consume_ms"][q]) for q in ("p50", "p95")
                },
            }
        )
    return {
        "benchmark": "capture_latency",
        "date": now_iso(),
        "machine": machine_info(s),
        "parameters": {
            "rates_per_s": list(rates),
            "duration_s": duration,
            "max_in_flight": MAX_IN_FLIGHT,
            "payload_bytes": len(PAYLOAD),
            "timestamp": "topic message.timestamp.type=LogAppendTime",
            "commitlog_sync_period_ms": s.commitlog_sync_period_ms,
            "idx_poll_ms": s.idx_poll_ms,
            "queue_poll_ms": s.queue_poll_ms,
            "linger_ms": s.linger_ms,
        },
        "target": target(rows),
        "rows": rows,
    }


def target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """p95 <= 1 s at 1,000 writes/s; only conclusive when the writer reached >= 95 % of that rate."""
    at = next((r for r in rows if r["rate"] == TARGET["rate"]), None)
    p95 = at["agent"]["capture_ms"]["p95"] if at else None
    achieved = at["agent"]["achieved_rate"] if at else None
    reached = achieved is not None and achieved >= 0.95 * TARGET["rate"]
    met = p95 is not None and p95 <= TARGET["p95_ms"]
    verdict = ("met" if met else "NOT met") if reached else ("not conclusive" if met else "NOT met")
    return {
        **TARGET,
        "measured_p95_ms": p95,
        "achieved_rate": achieved,
        "met": met and reached,
        "verdict": verdict,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = header(result)
    lines += [
        "Capture latency = Kafka LogAppendTime - `source.ts_us`/1000 (real-time `USING TIMESTAMP`); consume = "
        "time our consumer got the record - `source.ts_us`/1000. Baseline: plain aiokafka producer (acks=all, "
        "idempotent, linger 0) on the same broker at the same rate; send time in place of `ts_us`. ms.",
        "",
        "| rate/s | achieved/s | written | received | dups | capture p50 | p95 | p99 | max | consume p50 | p95 "
        "| baseline append p50 | p95 | p99 | max | baseline consume p50 | p95 | capture/baseline-append p50 | p95 "
        "| consume/baseline-consume p50 | p95 |",
        "|" + "---|" * 21,
    ]
    for r in result["rows"]:
        a, b = r["agent"], r["baseline"]
        ca, cc, ba, bc = a["capture_ms"], a["consume_ms"], b["append_ms"], b["consume_ms"]
        cells = [
            r["rate"],
            a["achieved_rate"],
            a["written"],
            a["received"],
            a["duplicates"],
            ca["p50"],
            ca["p95"],
            ca["p99"],
            ca["max"],
            cc["p50"],
            cc["p95"],
            ba["p50"],
            ba["p95"],
            ba["p99"],
            ba["max"],
            bc["p50"],
            bc["p95"],
            r["ratio_capture_to_baseline_append"]["p50"],
            r["ratio_capture_to_baseline_append"]["p95"],
            r["ratio_consume_to_baseline_consume"]["p50"],
            r["ratio_consume_to_baseline_consume"]["p95"],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    t = result["target"]
    lines += [
        "",
        f"Target p95 <= {t['p95_ms']:.0f} ms at {t['rate']} writes/s: {t['verdict']} (p95 {t['measured_p95_ms']} ms "
        f"at an achieved {t['achieved_rate']} writes/s; the rate counts as reached at >= 95 %).",
    ]
    return "\n".join(lines)

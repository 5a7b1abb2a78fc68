"""Latency through a caught-up worker: synthetic events at fixed rates (Kafka -> PostgreSQL), and real CQL
writes through the Debezium agent (Cassandra -> PostgreSQL), with the agent's duplicate rate."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from app.clock import now_us
from app.demo.pacing import paced
from bench.common import summary
from bench.events import MIX, ROWS, SCALAR, EventGen, produce_at_rate
from bench.observe import CheckpointPoller, histogram, histogram_quantiles, scrape
from stack.config import Settings

STEP_S = float(os.environ.get("BENCH_PIPELINE_STEP_S", "20"))
DRAIN_TIMEOUT_S = 300.0
MAX_IN_FLIGHT = 256


def kafka_step(
    s: Settings, topic: str, gen: EventGen, rate: int, poller: CheckpointPoller, web_port: int
) -> dict[str, Any]:
    """Synthetic events at ``rate``/s into a caught-up worker's LogAppendTime topic: append -> commit."""
    n = int(rate * STEP_S)
    t_start = now_us() + 1_000_000  # generation takes a moment: stamp events with their planned send time
    events = [gen.event(i, t_start + int(i * 1e6 / rate)) for i in range(n)]
    hist_name = "cdc_kafka_to_postgres_seconds"
    before = histogram(scrape(web_port), hist_name)
    appended, sent = asyncio.run(produce_at_rate(s.kafka_bootstrap, topic, events, rate))
    last = max(o for o, _ in appended)
    drained = poller.wait_for(topic, last + 1, DRAIN_TIMEOUT_S)
    drain_done = time.time()
    after = histogram(scrape(web_port), hist_name)
    lat = []
    for offset, append_ms in appended:
        committed = poller.commit_time(topic, offset)
        if committed is not None:
            lat.append(committed * 1000 - append_ms)
    return {
        "rate": rate,
        **sent,
        "committed": len(lat),
        "drained": drained,
        "drain_after_last_send_s": round(drain_done - max(a for _, a in appended) / 1000, 2),
        "kafka_to_pg_ms": summary(lat),
        "worker_histogram": histogram_quantiles(before, after),
    }


class CqlWriter:
    """Rate-controlled mixed CQL writes (70 % INSERT, 20 % UPDATE of 3 columns, 10 % row DELETE), bounded
    in-flight, each ``USING TIMESTAMP <now µs>``."""

    def __init__(self, session: Any, keyspace: str, table: str, seed: int) -> None:
        cols = [*SCALAR.key(0), *SCALAR.columns]
        t = f"{keyspace}.{table}"
        self.session = session
        self.insert = session.prepare(
            f"INSERT INTO {t} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) USING TIMESTAMP ?"
        )
        self.update = session.prepare(
            f"UPDATE {t} USING TIMESTAMP ? SET seq = ?, n = ?, t = ? WHERE tenant = ? AND id = ? AND c = ?"
        )
        self.delete = session.prepare(
            f"DELETE FROM {t} USING TIMESTAMP ? WHERE tenant = ? AND id = ? AND c = ?"
        )
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.sem = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self.ok = self.failed = 0
        self.errors: list[str] = []

    def _done(self, _: Any) -> None:
        with self.lock:
            self.ok += 1
        self.sem.release()

    def _err(self, exc: BaseException) -> None:
        with self.lock:
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(repr(exc))
        self.sem.release()

    def statement(self, seq: int, ts: int) -> tuple[Any, list[Any]]:
        r = self.rng
        tenant, id_, c = SCALAR.key(r.randrange(ROWS)).values()
        x = r.random()
        if x < MIX["insert"]:
            values = [
                tenant,
                id_,
                c,
                seq,
                r.randrange(-(2**31), 2**31),
                r.randrange(-(2**62), 2**62),
                f"text-{seq}-" + "x" * r.randrange(8, 40),
                r.random() * 1e6,
                r.random() < 0.5,
                ts // 1000 - r.randrange(0, 10**9),
                uuid.uuid4(),
                Decimal(r.randrange(-(10**9), 10**9)).scaleb(-4),
                ts,
            ]
            return self.insert, values
        if x < MIX["insert"] + MIX["update"]:
            return self.update, [ts, seq, r.randrange(1000), f"upd-{seq}", tenant, id_, c]
        return self.delete, [ts, tenant, id_, c]

    def run(self, rate: int, duration: float, seq0: int) -> dict[str, Any]:
        n = int(rate * duration)
        first_ts = last_ts = 0
        t0 = time.perf_counter()
        for i in paced(n, rate):
            self.sem.acquire()
            ts = now_us()
            first_ts = first_ts or ts
            last_ts = ts
            prepared, values = self.statement(seq0 + i, ts)
            self.session.execute_async(prepared, values).add_callbacks(self._done, self._err)
        for _ in range(MAX_IN_FLIGHT):
            self.sem.acquire()
        for _ in range(MAX_IN_FLIGHT):
            self.sem.release()
        elapsed = time.perf_counter() - t0
        return {
            "written": self.ok,
            "failed": self.failed,
            "errors": self.errors,
            "achieved_rate": round(self.ok / elapsed, 1),
            "ts_range_us": (first_ts, last_ts),
        }


@dataclass
class LiveEvents:
    """Events of the real-CQL table as the agent published them: offset -> (source.ts_us, append ms)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_offset: dict[int, tuple[int, int]] = field(default_factory=dict)
    seen: set[tuple[int, bytes]] = field(default_factory=set)
    duplicates: set[int] = field(default_factory=set)

    def add(self, record: Any, _received_ms: float) -> None:
        if record.value is None:
            return
        value = orjson.loads(record.value)
        ts_us = value["source"]["ts_us"]
        identity = (ts_us, record.key)
        with self.lock:
            if identity in self.seen:
                self.duplicates.add(record.offset)
                return
            self.seen.add(identity)
            self.by_offset[record.offset] = (ts_us, record.timestamp)

    def within(self, first_us: int, last_us: int) -> dict[int, tuple[int, int]]:
        """First occurrence of each write (same ``ts_us`` and key) in the window, by offset."""
        with self.lock:
            return {o: v for o, v in self.by_offset.items() if first_us <= v[0] <= last_us}

    def duplicates_between(self, first: int, last: int) -> int:
        with self.lock:
            return sum(1 for o in self.duplicates if first <= o <= last)


def cql_step(
    session: Any,
    keyspace: str,
    table: str,
    topic: str,
    rate: int,
    poller: CheckpointPoller,
    live: LiveEvents,
    web_port: int,
) -> dict[str, Any]:
    hist_name = "cdc_cassandra_to_postgres_seconds"
    before = histogram(scrape(web_port), hist_name)
    w = CqlWriter(session, keyspace, table, seed=rate).run(rate, STEP_S, seq0=rate * 1_000_000)
    first_us, last_us = w.pop("ts_range_us")
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    events = live.within(first_us, last_us)
    while len(events) < w["written"] and time.monotonic() < deadline:
        time.sleep(0.2)
        events = live.within(first_us, last_us)
    drained = bool(events) and poller.wait_for(topic, max(events) + 1, DRAIN_TIMEOUT_S)
    after = histogram(scrape(web_port), hist_name)
    total, capture, apply = [], [], []
    for offset, (ts_us, append_ms) in events.items():
        committed = poller.commit_time(topic, offset)
        capture.append(append_ms - ts_us / 1000)
        if committed is not None:
            total.append(committed * 1000 - ts_us / 1000)
            apply.append(committed * 1000 - append_ms)
    return {
        "rate": rate,
        **w,
        "events_seen": len(events),
        "agent_duplicates": live.duplicates_between(min(events, default=0), max(events, default=-1)),
        "committed": len(total),
        "drained": drained,
        "cassandra_to_pg_ms": summary(total),
        "capture_ms": summary(capture),
        "kafka_to_pg_ms": summary(apply),
        "worker_histogram_per_batch_newest_event": histogram_quantiles(before, after),
    }

"""The benchmark's tables and synthetic change events, in the Debezium Cassandra agent's exact JSON shape.

Two table shapes: ``SCALAR`` (composite key, 9 scalar columns; optionally a ``set<text>`` read back from
Cassandra) and ``WIDE`` (16 columns: a two-column partition key, a clustering column and 13 regular columns,
among them a ``frozen<list<int>>``). Events are 70 % inserts, 20 % partial updates and 10 % row deletes over
``ROWS`` rows, or only inserts of every row once (``initial``: what pre-populates a mirror).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from app.clock import now_us
from app.testing import debezium_cell, debezium_source

ROWS = 20_000
MIX = {"insert": 0.7, "update": 0.2, "delete": 0.1}

Value = Callable[[random.Random, int, int], Any]
"""A column's value for event ``seq`` at ``ts_us``."""


def _text(r: random.Random, seq: int, ts: int) -> str:
    return f"text-{seq}-" + "x" * r.randrange(8, 40)


def _uuid(r: random.Random, seq: int, ts: int) -> str:
    return str(uuid.UUID(int=r.getrandbits(128), version=4))


def _decimal(r: random.Random, seq: int, ts: int) -> str:
    return str(Decimal(r.randrange(-(10**9), 10**9)).scaleb(-4))


SCALAR_COLUMNS: dict[str, tuple[str, Value]] = {
    "seq": ("bigint", lambda r, seq, ts: seq),
    "n": ("int", lambda r, seq, ts: r.randrange(-(2**31), 2**31)),
    "b": ("bigint", lambda r, seq, ts: r.randrange(-(2**62), 2**62)),
    "t": ("text", _text),
    "d": ("double", lambda r, seq, ts: r.random() * 1e6),
    "f": ("boolean", lambda r, seq, ts: r.random() < 0.5),
    "ts": ("timestamp", lambda r, seq, ts: ts // 1000 - r.randrange(0, 10**9)),
    "u": ("uuid", _uuid),
    "m": ("decimal", _decimal),
}
SET_COLUMN: dict[str, tuple[str, Value]] = {
    "tags": (
        "set<text>",
        lambda r, seq, ts: sorted({f"tag{r.randrange(50)}" for _ in range(r.randrange(1, 4))}),
    )
}
WIDE_EXTRA: dict[str, tuple[str, Value]] = {
    "i2": ("int", lambda r, seq, ts: r.randrange(-1000, 1000)),
    "s2": ("smallint", lambda r, seq, ts: r.randrange(-(2**15), 2**15)),
    "t2": ("text", _text),
    "dt": ("date", lambda r, seq, ts: r.randrange(0, 20000)),
    "fl": ("frozen<list<int>>", lambda r, seq, ts: [r.randrange(1000) for _ in range(r.randrange(0, 6))]),
}


@dataclass(frozen=True)
class Shape:
    """A table: its key (partition columns, clustering columns) and regular columns."""

    name: str
    partition: tuple[tuple[str, str], ...]
    clustering: tuple[tuple[str, str], ...]
    columns: dict[str, tuple[str, Value]]

    def definition(self) -> str:
        cols = [*self.partition, *self.clustering, *((n, t) for n, (t, _) in self.columns.items())]
        pk = ", ".join(n for n, _ in self.partition)
        ck = "".join(f", {n}" for n, _ in self.clustering)
        return ", ".join(f"{n} {t}" for n, t in cols) + f", PRIMARY KEY (({pk}){ck})"

    def key(self, k: int) -> dict[str, Any]:
        """Row ``k`` of 0..ROWS-1: 10 tenants x 200 ids (2,000 partitions) x 10 clustering rows."""
        values = [f"t{k % 10}", (k // 10) % 200, k // 2000]
        names = [n for n, _ in (*self.partition, *self.clustering)]
        return dict(zip(names, values, strict=True))

    @property
    def column_count(self) -> int:
        return len(self.partition) + len(self.clustering) + len(self.columns)


SCALAR = Shape("thr", (("tenant", "text"), ("id", "int")), (("c", "int"),), SCALAR_COLUMNS)
WITH_SET = Shape("thr_set", SCALAR.partition, SCALAR.clustering, SCALAR_COLUMNS | SET_COLUMN)
WIDE = Shape("wide", (("tenant", "text"), ("region", "int")), (("id", "int"),), SCALAR_COLUMNS | WIDE_EXTRA)


@dataclass
class EventGen:
    """Events of the Debezium Cassandra agent (3.4.1.Final, JSON, schemas disabled) for one table."""

    keyspace: str
    shape: Shape
    seed: int = 1
    rng: random.Random = field(init=False)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MIX, 0))

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _op(self) -> str:
        r = self.rng.random()
        return "i" if r < MIX["insert"] else "u" if r < MIX["insert"] + MIX["update"] else "d"

    def event(
        self, seq: int, ts_us: int, *, row: int | None = None, op: str | None = None
    ) -> tuple[bytes, bytes]:
        """A random event (or an insert of ``row``), as (key, value) bytes."""
        op = op or self._op()
        self.counts[{"i": "insert", "u": "update", "d": "delete"}[op]] += 1
        key = self.shape.key(self.rng.randrange(ROWS) if row is None else row)
        columns = self.shape.columns
        after: dict[str, Any] = {k: debezium_cell(v) for k, v in key.items()} | dict.fromkeys(columns)
        if op == "i":
            after |= {n: debezium_cell(gen(self.rng, seq, ts_us)) for n, (_, gen) in columns.items()}
        elif op == "u":
            touched = ["seq", *self.rng.sample(list(columns)[1:], 2)]
            after |= {n: debezium_cell(columns[n][1](self.rng, seq, ts_us)) for n in touched}
        else:
            after |= {n: debezium_cell(None, ts_us) for n in columns}
        after |= {"_range_start": None, "_range_end": None}
        value = {
            "ts_ms": ts_us // 1000 + 3,
            "op": op,
            "source": debezium_source(self.keyspace, self.shape.name, ts_us, pos=48575 + seq),
            "after": after,
        }
        return orjson.dumps(key), orjson.dumps(value)

    def initial(self, base_us: int) -> list[tuple[bytes, bytes]]:
        """An insert of every row once (pre-populates the mirror)."""
        return [self.event(i, base_us + i, row=i, op="i") for i in range(ROWS)]


async def _send_all(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        max_batch_size=1024 * 1024,
        max_request_size=8 << 20,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in events:
            pending.append(await producer.send(topic, value, key=key))  # partitioned by key (murmur2)
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def preload(
    bootstrap: str, topic: str, gen: EventGen, n: int, *, prepopulate: bool = False
) -> dict[str, Any]:
    """Write ``n`` random events (after an insert of every row when ``prepopulate``) into ``topic``."""
    base = now_us() - n - ROWS
    events = gen.initial(base) if prepopulate else []
    events += [gen.event(i, base + ROWS + i) for i in range(n)]
    seconds = asyncio.run(_send_all(bootstrap, topic, events))
    size = sum(len(k) + len(v) for k, v in events)
    return {
        "events": len(events),
        "initial_inserts": ROWS if prepopulate else 0,
        "mean_event_bytes": round(size / len(events)) if events else 0,
        "produce_s": round(seconds, 1),
        "mix": dict(gen.counts),
    }


async def produce_at_rate(
    bootstrap: str, topic: str, events: list[tuple[bytes, bytes]], rate: int
) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """Send ``events`` at ``rate``/s (paced in 1 ms slices); returns (offset, LogAppendTime ms) per event."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=1)
    await producer.start()
    futures = []
    try:
        t0 = time.perf_counter()
        i = 0
        while i < len(events):
            due = min(len(events), int((time.perf_counter() - t0) * rate) + 1)
            while i < due:
                key, value = events[i]
                futures.append(await producer.send(topic, value, key=key))
                i += 1
            await asyncio.sleep(0.001)
        metas = await asyncio.gather(*futures)
        elapsed = time.perf_counter() - t0
    finally:
        await producer.stop()
    if any(m.timestamp_type != 1 for m in metas):
        raise RuntimeError(f"{topic} is not a LogAppendTime topic")
    return [(m.offset, m.timestamp) for m in metas], {
        "sent": len(events),
        "achieved_rate": round(len(events) / elapsed, 1),
    }

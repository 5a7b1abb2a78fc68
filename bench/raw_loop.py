"""The baseline for ``bench.pipeline``: the least a Kafka -> PostgreSQL loop in Python can do per event.

A plain aiokafka consumer reads a pre-loaded topic from the beginning; each batch (``getmany``, up to
``batch_size`` records) is JSON-decoded (orjson, as the worker) into flat rows, which go to an UNLOGGED scratch
table with one COPY and one commit per batch. No semantics: no key merge, no state, no offsets, no upsert.
The COPY runs in a thread (like the worker's applier), so fetching overlaps with writing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from psycopg import sql


async def _consume(
    bootstrap: str,
    dsn: str,
    topic: str,
    key_columns: Sequence[str],
    value_columns: Sequence[str],
    table: str,
    batch_size: int,
) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    cols = [*key_columns, "op", "ts_us", *value_columns]
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    )
    conn = psycopg.connect(dsn)

    def write(rows: list[list[Any]]) -> None:
        with conn.cursor().copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    started = time.perf_counter()
    await consumer.start()
    events = batches = 0
    first_batch_done: float | None = None
    events_after_first = 0
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        position = 0
        while position < end:
            got = await consumer.getmany(tp, timeout_ms=500, max_records=batch_size)
            records = got.get(tp, [])
            if not records:
                continue
            rows: list[list[Any]] = []
            for r in records:
                if r.value is None:
                    continue
                key, value = orjson.loads(r.key), orjson.loads(r.value)
                after, source = value["after"], value["source"]
                cells = [after.get(c) for c in value_columns]
                rows.append(
                    [
                        *(key.get(c) for c in key_columns),
                        value["op"],
                        source["ts_us"],
                        *(cell.get("value") if cell else None for cell in cells),
                    ]
                )
            await asyncio.to_thread(write, rows)
            events += len(records)
            batches += 1
            position = records[-1].offset + 1
            if first_batch_done is None:
                first_batch_done = time.perf_counter()
            else:
                events_after_first += len(records)
        finished = time.perf_counter()
    finally:
        await consumer.stop()
        conn.close()
    steady_s = finished - first_batch_done if first_batch_done is not None else None
    total_s = finished - started
    return {
        "events": events,
        "batches": batches,
        "mean_batch": round(events / batches, 1) if batches else None,
        "total_s": round(total_s, 3),
        "startup_s": round((first_batch_done or finished) - started, 3),
        "steady_s": round(steady_s, 3) if steady_s else None,
        "events_per_s_total": round(events / total_s, 1) if total_s > 0 else None,
        "events_per_s": round(events_after_first / steady_s, 1) if steady_s else None,
    }


def run_raw_loop(
    bootstrap: str,
    dsn: str,
    topic: str,
    key_columns: Sequence[tuple[str, str]],
    value_columns: Sequence[tuple[str, str]],
    batch_size: int = 2000,
) -> dict[str, Any]:
    """Consume ``topic`` (one partition) once into a fresh unlogged scratch table; returns events/s.

    ``key_columns`` / ``value_columns``: (name, PostgreSQL type) of the key JSON fields and of the ``after``
    cells to copy. ``events_per_s`` is measured after the first batch (start-up excluded), like the worker's.
    """
    table = f"bench_raw_{uuid.uuid4().hex[:8]}"
    defs = [*key_columns, ("op", "text"), ("ts_us", "bigint"), *value_columns]
    ddl = sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in defs),
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ddl)
    try:
        result = asyncio.run(
            _consume(
                bootstrap,
                dsn,
                topic,
                [n for n, _ in key_columns],
                [n for n, _ in value_columns],
                table,
                batch_size,
            )
        )
        with psycopg.connect(dsn) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        result["rows_copied"] = int(row[0]) if row else 0
        return result
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))

"""The dead-letter outbox on a real PostgreSQL and Kafka: a send the broker has not acknowledged is not marked
published; the broker stopped before the acknowledgement and started again, each dead letter reaches the topic
exactly once; a value too large for the producer goes out cut, with a header, the full bytes kept in
PostgreSQL; a record the producer refuses outright does not hold back the others."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.runtime import Runtime
from app.settings import load_settings
from app.testing import create_topics, unique
from stack import control
from stack.config import Settings as StackSettings

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra")]

BIG_VALUE = 2_000_000
"""Twice the outbox's default message limit (``dlq.max_message_bytes``)."""


def insert(pg_dsn: str, topic: str, rows: list[tuple[int, bytes | None, bytes]]) -> dict[int, int]:
    """Dead letters of ``topic`` (offset, key, value) as a batch would record them; offset -> id."""
    ids = {}
    with psycopg.connect(pg_dsn) as conn:
        for offset, key, value in rows:
            row = conn.execute(
                """INSERT INTO _cdc_dlq_records (topic, partition, "offset", error_type, error_message, key, value)
                   VALUES (%s, 0, %s, 'malformed_event', 'test', %s, %s) RETURNING id""",
                (topic, offset, key, value),
            ).fetchone()
            assert row is not None
            ids[offset] = int(row[0])
    return ids


def state(pg_dsn: str, topic: str) -> dict[int, tuple[bool, int, bool, int]]:
    """offset -> (published, publish attempts, truncated, stored value length)."""
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            """SELECT "offset", published_at IS NOT NULL, publish_attempts, truncated, length(value)
               FROM _cdc_dlq_records WHERE topic = %s""",
            (topic,),
        ).fetchall()
    return {int(r[0]): (bool(r[1]), int(r[2]), bool(r[3]), int(r[4])) for r in rows}


async def published(bootstrap: str, dlq: str, timeout: float = 20) -> list[Any]:
    consumer = AIOKafkaConsumer(
        dlq,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_bytes=8 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < deadline and quiet < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            records = [r for rs in batch.values() for r in rs]
            quiet = 0 if records else quiet + 1
            found.extend(records)
        return found
    finally:
        await consumer.stop()


def test_each_dead_letter_is_published_once_across_a_broker_outage_and_none_blocks_the_others(
    pg_dsn: str,
    kafka_bootstrap: str,
    cassandra_contact: tuple[str, int],
    stack_settings: StackSettings,
) -> None:
    topic, dlq = unique("it_outbox"), unique("it_outbox_dlq")
    create_topics(kafka_bootstrap, [dlq])
    host, port = cassandra_contact
    settings = load_settings(
        postgres={"dsn": pg_dsn},
        kafka={"bootstrap_servers": kafka_bootstrap},
        cassandra={"hosts": [host], "port": port},
        dlq={"ack_timeout_s": 3, "publish_batch": 100_000},
    )
    ids = insert(
        pg_dsn,
        topic,
        [(0, b"k0", b"v0"), (1, b"k1", b"x" * BIG_VALUE), (2, b"k" * 1_500_000, b"v2"), (3, b"k3", b"v3")],
    )
    try:
        asyncio.run(_scenario(settings, stack_settings, pg_dsn, kafka_bootstrap, topic, dlq, ids))
    finally:  # a failed run must not leave rows every later worker keeps trying to publish
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("DELETE FROM _cdc_dlq_records WHERE topic = %s", (topic,))


async def _scenario(
    settings: Any,
    stack_settings: StackSettings,
    pg_dsn: str,
    bootstrap: str,
    topic: str,
    dlq: str,
    ids: dict[int, int],
) -> None:
    runtime = Runtime(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        request_timeout_ms=180_000,
        max_request_size=1_048_576,
        enable_idempotence=True,
    )
    await runtime.ensure_started()
    await producer.start()

    async def send(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
        return await producer.send(dlq, key=key, value=value, headers=headers)

    try:
        await runtime.publish_dead_letters(send)
        now = state(pg_dsn, topic)
        assert now[0][:1] == now[1][:1] == now[3][:1] == (True,), now
        assert now[1] == (True, 0, True, BIG_VALUE)  # cut on the topic, whole in PostgreSQL
        assert now[2][:2] == (False, 1)  # refused by the producer (its key alone is too large): later again

        # Broker stopped after the send, before the acknowledgement: nothing marked, then each sent once.
        more = insert(pg_dsn, topic, [(4, b"k4", b"v4"), (5, b"k5", b"v5")])
        await asyncio.to_thread(control.stop, ["kafka"], stack_settings, print)
        try:
            assert await runtime.publish_dead_letters(send) == 0
            assert {o: s[0] for o, s in state(pg_dsn, topic).items() if o in more} == {4: False, 5: False}
        finally:
            await asyncio.to_thread(control.up, ["kafka"], stack_settings, print)
        deadline = time.monotonic() + 120
        while not all(state(pg_dsn, topic)[o][0] for o in more) and time.monotonic() < deadline:
            await runtime.publish_dead_letters(send)
            await asyncio.sleep(1)
    finally:
        await producer.stop()
        runtime.close()

    final = state(pg_dsn, topic)
    assert [o for o, s in sorted(final.items()) if s[0]] == [0, 1, 3, 4, 5], final
    records = await published(bootstrap, dlq)
    by_id: dict[int, list[Any]] = {}
    for r in records:
        by_id.setdefault(int(dict(r.headers)["cdc.dlq.id"]), []).append(r)
    everything = {**ids, **more}
    assert {offset: len(by_id.get(i, [])) for offset, i in everything.items()} == {
        0: 1,
        1: 1,
        2: 0,
        3: 1,
        4: 1,
        5: 1,
    }
    cut = by_id[ids[1]][0]
    assert b"value cut from 2000000" in dict(cut.headers)["cdc.truncated"]
    assert len(cut.value) < settings.dlq.max_message_bytes

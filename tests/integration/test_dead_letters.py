"""Bad records among good ones on a real stack: each bad record is dead-lettered under its typed reason (in
``_cdc_dlq_records`` and on the ``dlq-events`` topic), the good ones are applied, and the checkpoint moves on.

Own keyspace with a CDC table; valid rows are written with CQL (captured by the Debezium agent), bad records
are produced with aiokafka into the same topic ``<prefix>.<ks>.items`` between the valid writes. The worker
runs without a schema registry, so an Avro-framed record is dead-lettered as ``avro_without_registry``.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from psycopg import sql

from app.clock import now_us
from app.testing import (
    StartWorker,
    compare_keyspace,
    create_cdc_keyspace,
    debezium_source,
    produce,
    wait_applied,
    wait_until,
)
from app.testing import debezium_cell as cell
from models.avro import frame

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

TABLE = "items"
DEFINITION = "id int, seq int, name text, qty int, PRIMARY KEY (id, seq)"
DLQ_TOPIC = "dlq-events"


def event(keyspace: str, table: str, op: str, after: dict[str, Any]) -> bytes:
    ts = now_us()
    source = debezium_source(keyspace, table, ts, file="CommitLog-7-0.log", pos=0)
    return orjson.dumps({"ts_ms": ts // 1000, "op": op, "source": source, "after": after})


async def read_dead_letters(bootstrap: str, origin_topic: str, count: int, timeout: float) -> list[Any]:
    """Records of the DLQ topic whose ``cdc.origin.topic`` header is ``origin_topic`` (until ``count``)."""
    consumer = AIOKafkaConsumer(
        DLQ_TOPIC, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("cdc.origin.topic") == origin_topic.encode():
                        found.append(record)
        return found
    finally:
        await consumer.stop()


def test_bad_records_are_dead_lettered_and_the_stream_goes_on(
    cql: Any,
    keyspace: str,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    topic = f"{topic_prefix}.{keyspace}.{TABLE}"
    topics.append(topic)
    create_cdc_keyspace(cql, keyspace, {TABLE: DEFINITION}, topic_prefix, kafka_bootstrap, agent_log)
    for i in range(5):
        cql.execute(f"INSERT INTO {keyspace}.{TABLE} (id, seq, name, qty) VALUES (1, {i}, 'n{i}', {i})")

    good_after = {"id": cell(1), "seq": cell(0), "name": cell("x"), "qty": cell(7), "_range_start": None}
    bad: dict[str, tuple[bytes | None, bytes]] = {
        "malformed_event": (b'{"id": 1, "seq": 0}', b'{"ts_ms": 1, "op": "i", "source": {'),
        "value_mapping_error": (
            b'{"id": 1, "seq": 0}',
            event(keyspace, TABLE, "u", {**good_after, "qty": cell("seven")}),
        ),
        "topic_mismatch": (  # a forged source.keyspace: it must not write that keyspace's mirror
            b'{"id": 1, "seq": 0}',
            event(f"{keyspace}_forged", TABLE, "i", good_after),
        ),
        "unknown_column": (
            b'{"id": 1, "seq": 0}',
            event(keyspace, TABLE, "u", {**good_after, "colour": cell("red")}),
        ),
        "unsupported_event": (b'{"id": 1, "seq": 0}', event(keyspace, TABLE, "t", good_after)),
        "avro_without_registry": (None, frame(1, b"\x02\x04")),
    }
    reasons = list(bad)
    positions = produce(kafka_bootstrap, topic, [bad[r] for r in reasons])
    expected = {reason: pos for reason, pos in zip(reasons, positions, strict=True)}

    # valid writes after the bad records: the stream must go past them
    cql.execute(f"UPDATE {keyspace}.{TABLE} SET qty = 40 WHERE id = 1 AND seq = 4")
    cql.execute(f"DELETE FROM {keyspace}.{TABLE} WHERE id = 1 AND seq = 0")
    for i in range(3):
        cql.execute(f"INSERT INTO {keyspace}.{TABLE} (id, seq, name, qty) VALUES (2, {i}, 'm{i}', {10 + i})")

    worker = start_worker([keyspace])
    diffs: list[Any] = []

    def converged() -> bool:
        """Applied up to the end of the topic and equal (the agent's capture lags the CQL writes)."""
        wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic], timeout=120)
        diffs[:] = compare_keyspace(cql, pg_dsn, keyspace, [TABLE])
        return all(d.equal for d in diffs)

    try:
        wait_until(converged, 120, "PostgreSQL did not converge to Cassandra")
    except TimeoutError as error:
        pytest.fail(f"{error}: {[d.summary() for d in diffs]}\n{worker.log_tail()}")

    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            """SELECT error_type, partition, "offset", key, value, error_message FROM _cdc_dlq_records
               WHERE topic = %s ORDER BY "offset\"""",
            (topic,),
        ).fetchall()
        mirror = conn.execute(
            f'SELECT id, seq, name, qty FROM "{keyspace}"."{TABLE}" ORDER BY id, seq'
        ).fetchall()
        checkpoints: dict[int, int] = dict(
            conn.execute(
                "SELECT partition, next_offset FROM _cdc_checkpoints WHERE group_id = %s AND topic = %s",
                (worker.app_id, topic),
            ).fetchall()
        )
    got = {row[0]: (row[1], row[2]) for row in rows}
    assert got == expected, worker.log_tail()
    assert len(rows) == len(expected)
    for error_type, _, _, key, value, message in rows:
        assert (bytes(key) if key is not None else None, bytes(value)) == bad[error_type]
        assert message
    by_type = {row[0]: row[5] for row in rows}
    assert f"{keyspace}_forged.{TABLE}" in by_type["topic_mismatch"]
    assert "colour" in by_type["unknown_column"]
    assert "qty" in by_type["value_mapping_error"]
    assert "registry" in by_type["avro_without_registry"]

    assert mirror == [
        (1, 1, "n1", 1),
        (1, 2, "n2", 2),
        (1, 3, "n3", 3),
        (1, 4, "n4", 40),
        (2, 0, "m0", 10),
        (2, 1, "m1", 11),
        (2, 2, "m2", 12),
    ]
    for partition, offset in expected.values():
        assert checkpoints[partition] > offset

    letters = asyncio.run(read_dead_letters(kafka_bootstrap, topic, len(expected), timeout=60))
    published = {}
    for record in letters:
        headers = dict(record.headers)
        published[headers["cdc.error.type"].decode()] = (
            int(headers["cdc.origin.partition"]),
            int(headers["cdc.origin.offset"]),
            record.key,
            record.value,
        )
    assert published == {
        reason: (partition, offset, *bad[reason]) for reason, (partition, offset) in expected.items()
    }


def test_a_key_postgres_cannot_index_is_dead_lettered_alone_and_odd_column_names_read_back(
    cql: Any,
    keyspace: str,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    """A 4 kB text partition key (Cassandra allows 64 KiB; a PostgreSQL btree entry ~2.7 kB) among good
    rows: the batch is bisected, that record alone is dead-lettered as ``key_too_large``, everything else
    applies. A non-frozen set in a column named with an embedded ``"`` is read back from Cassandra
    correctly (the read-back's CQL protects the name)."""
    big, odd = "big", "odd"
    topics.extend(f"{topic_prefix}.{keyspace}.{t}" for t in (big, odd))
    create_cdc_keyspace(
        cql,
        keyspace,
        {big: "k text PRIMARY KEY, v int", odd: 'id int PRIMARY KEY, "we""ird" set<text>, "Mixed Case" int'},
        topic_prefix,
        kafka_bootstrap,
        agent_log,
    )
    random_key = "".join(random.choices(string.ascii_letters + string.digits, k=4096))  # incompressible
    for i in range(5):
        cql.execute(f"INSERT INTO {keyspace}.{big} (k, v) VALUES (%s, %s)", (f"small-{i}", i))
    cql.execute(f"INSERT INTO {keyspace}.{big} (k, v) VALUES (%s, %s)", (random_key, 99))
    for i in range(5, 10):
        cql.execute(f"INSERT INTO {keyspace}.{big} (k, v) VALUES (%s, %s)", (f"small-{i}", i))
    for i in range(3):
        cql.execute(
            f'INSERT INTO {keyspace}.{odd} (id, "we""ird", "Mixed Case") VALUES (%s, %s, %s)', (i, {"a"}, i)
        )
        cql.execute(f'UPDATE {keyspace}.{odd} SET "we""ird" = "we""ird" + %s WHERE id = %s', ({f"b{i}"}, i))
    worker = start_worker([keyspace])
    diffs: list[Any] = []

    def applied() -> bool:
        wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, topics, timeout=120)
        diffs[:] = compare_keyspace(cql, pg_dsn, keyspace, [odd])
        return all(d.equal for d in diffs)

    try:
        wait_until(applied, 120, "the stream did not get past the big key")
    except TimeoutError as error:
        pytest.fail(f"{error}: {[d.summary() for d in diffs]}\n{worker.log_tail()}")
    with psycopg.connect(pg_dsn) as conn:
        letters = conn.execute(
            "SELECT error_type, error_message FROM _cdc_dlq_records WHERE topic = ANY(%s)", (topics,)
        ).fetchall()
        mirror = conn.execute(
            sql.SQL("SELECT k, v FROM {} ORDER BY v").format(sql.Identifier(keyspace, big))
        ).fetchall()
        sets = conn.execute(
            sql.SQL('SELECT id, "we""ird", "Mixed Case" FROM {} ORDER BY id').format(
                sql.Identifier(keyspace, odd)
            )
        ).fetchall()
    assert [t for t, _ in letters] == ["key_too_large"], letters
    assert "index row size" in letters[0][1]
    assert mirror == [(f"small-{i}", i) for i in range(10)]
    assert sets == [(i, ["a", f"b{i}"], i) for i in range(3)]

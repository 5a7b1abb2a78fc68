"""Avro change events (Confluent wire format, schemas in Apicurio's ccompat API) through a real worker.

The Debezium Cassandra agent cannot emit Avro for tables with mixed column types (every cell record is named
``cell_value``; see :mod:`models.avro`), so these tests produce Debezium-shaped Avro events themselves with
one record name per cell. The table lives in Cassandra WITHOUT cdc (no agent events interleave): each event
is written to Cassandra as the same CQL statement ``USING TIMESTAMP`` its ``source.ts_us``, so the PostgreSQL
mirror must end up equal to Cassandra.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import fastavro
import psycopg
import pytest
from schema_registry.client import SchemaRegistryClient
from schema_registry.client.schema import AvroSchema

from app.clock import now_us
from app.testing import (
    StartWorker,
    WorkerProcess,
    compare_keyspace,
    create_keyspace,
    create_topics,
    debezium_like_schemas,
    debezium_source,
    delete_topics,
    free_port,
    produce,
    wait_applied,
    wait_until,
)
from app.testing import debezium_cell as cell
from models.avro import frame

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "apicurio")]

TABLE = "items"
DEFINITION = """id int, seq int, name text, qty int, data blob, at timestamp, ratio float,
                scores frozen<map<int, text>>, PRIMARY KEY (id, seq)"""
REGULAR = ("name", "qty", "data", "at", "ratio", "scores")
MAP_ENTRY = {
    "type": "array",
    "items": {
        "type": "record",
        "name": "MapEntry",
        "namespace": "io.confluent.connect.avro",
        "fields": [{"name": "key", "type": "int"}, {"name": "value", "type": ["null", "string"]}],
    },
}
COLUMNS: list[tuple[str, Any]] = [
    ("name", "string"),
    ("qty", "int"),
    ("data", "bytes"),
    (
        "at",
        {
            "type": "long",
            "logicalType": "timestamp-millis",
            "connect.name": "org.apache.kafka.connect.data.Timestamp",
        },
    ),
    ("ratio", "float"),
    ("scores", MAP_ENTRY),
]
UNKNOWN_SCHEMA_ID = 2**31 - 1
AT_MS = 1562202942545


class AvroTopic:
    """The table's topic with its key/value schemas registered; encodes events in the wire format."""

    def __init__(self, bootstrap: str, topic_prefix: str, keyspace: str, registry_url: str) -> None:
        self.bootstrap = bootstrap
        self.topic = f"{topic_prefix}.{keyspace}.{TABLE}"
        self.keyspace = keyspace
        self.key_schema, self.value_schema = debezium_like_schemas(
            keyspace, TABLE, key=[("id", "int"), ("seq", "int")], columns=COLUMNS
        )
        client = SchemaRegistryClient(registry_url)
        self.key_id = client.register(f"{self.topic}-key", AvroSchema(self.key_schema))
        self.value_id = client.register(f"{self.topic}-value", AvroSchema(self.value_schema))
        create_topics(bootstrap, [self.topic])

    @staticmethod
    def _encode(schema: Any, datum: Any) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(schema), datum)
        return out.getvalue()

    def event(
        self, op: str, ts: int, key: dict[str, Any], cells: dict[str, Any], **ranges: Any
    ) -> tuple[bytes, bytes]:
        source = debezium_source(self.keyspace, TABLE, ts, file="CommitLog-7-0.log", pos=0)
        after = {**dict.fromkeys(("id", "seq", *REGULAR)), **cells}
        after["_range_start"] = ranges.get("start")
        after["_range_end"] = ranges.get("end")
        value = {"ts_ms": ts // 1000, "op": op, "source": source, "after": after}
        return (
            frame(self.key_id, self._encode(self.key_schema, key)),
            frame(self.value_id, self._encode(self.value_schema, value)),
        )

    def produce(self, records: list[tuple[bytes | None, bytes]]) -> list[int]:
        return [offset for _, offset in produce(self.bootstrap, self.topic, records)]


@pytest.fixture
def avro_topic(
    cql: Any, keyspace: str, kafka_bootstrap: str, topic_prefix: str, registry_url: str
) -> Iterator[AvroTopic]:
    """The keyspace with its table (without CDC: no agent events interleave) and the table's Avro topic
    (deleted afterwards)."""
    create_keyspace(cql, keyspace)
    cql.execute(f"CREATE TABLE {keyspace}.{TABLE} ({DEFINITION})")
    topic = AvroTopic(kafka_bootstrap, topic_prefix, keyspace, registry_url)
    yield topic
    delete_topics(kafka_bootstrap, [topic.topic])


def row_cells(
    id_: int, seq: int, name: str | None, qty: int, data: bytes, ratio: float, scores: dict[int, str]
) -> dict[str, Any]:
    return {
        "id": cell(id_),
        "seq": cell(seq),
        "name": cell(name),
        "qty": cell(qty),
        "data": cell(data),
        "at": cell(AT_MS),
        "ratio": cell(ratio),
        "scores": cell([{"key": k, "value": v} for k, v in scores.items()]),
    }


def insert_cql(
    ks: str,
    ts: int,
    id_: int,
    seq: int,
    name: str,
    qty: int,
    data: bytes,
    ratio: float,
    scores: dict[int, str],
) -> str:
    pairs = ", ".join(f"{k}: '{v}'" for k, v in scores.items())
    return (
        f"INSERT INTO {ks}.{TABLE} (id, seq, name, qty, data, at, ratio, scores) VALUES ({id_}, {seq}, '{name}', "
        f"{qty}, 0x{data.hex()}, {AT_MS}, {ratio}, {{{pairs}}}) USING TIMESTAMP {ts}"
    )


def dead_letters(pg_dsn: str, topic: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_dsn) as conn:
        return conn.execute(
            'SELECT "offset", error_type, error_message FROM _cdc_dlq_records WHERE topic = %s ORDER BY "offset"',
            (topic,),
        ).fetchall()


def test_avro_events_are_applied(
    cql: Any, keyspace: str, avro_topic: AvroTopic, start_worker: StartWorker, pg_dsn: str, registry_url: str
) -> None:
    t = avro_topic
    base = now_us()
    records: list[tuple[bytes | None, bytes]] = []
    statements: list[str] = []

    def both(statement: str, record: tuple[bytes, bytes]) -> None:
        statements.append(statement)
        records.append(record)

    inserts = [
        (1, 1, "a", 1, b"\x00\x01", 0.1, {2: "y", 1: "x"}),
        (1, 2, "b", 2, b"", 2.5, {}),
        (2, 1, "c", 3, b"\xff", -1.25, {7: "z"}),
        (2, 2, "d", 4, b"\x10", 3.0, {1: "q"}),
        (2, 3, "e", 5, b"\x11", 0.3, {1: "r"}),
        (3, 1, "f", 6, b"\x12", 1e-3, {5: "s"}),
        (3, 2, "g", 7, b"\x13", 1e10, {6: "t"}),
    ]
    for id_, seq, name, qty, data, ratio, scores in inserts:
        both(
            insert_cql(keyspace, base, id_, seq, name, qty, data, ratio, scores),
            t.event("i", base, {"id": id_, "seq": seq}, row_cells(id_, seq, name, qty, data, ratio, scores)),
        )
    deleted = {r: cell(None, base + 5) for r in REGULAR}
    both(
        f"UPDATE {keyspace}.{TABLE} USING TIMESTAMP {base + 1} SET qty = 50 WHERE id = 1 AND seq = 1",
        t.event("u", base + 1, {"id": 1, "seq": 1}, {"id": cell(1), "seq": cell(1), "qty": cell(50)}),
    )
    both(
        f"DELETE name FROM {keyspace}.{TABLE} USING TIMESTAMP {base + 2} WHERE id = 1 AND seq = 1",
        t.event("u", base + 2, {"id": 1, "seq": 1}, {"id": cell(1), "seq": cell(1), "name": cell(None)}),
    )
    both(
        f"DELETE FROM {keyspace}.{TABLE} USING TIMESTAMP {base + 5} WHERE id = 1 AND seq = 2",
        t.event("d", base + 5, {"id": 1, "seq": 2}, {"id": cell(1), "seq": cell(2), **deleted}),
    )
    both(
        f"DELETE FROM {keyspace}.{TABLE} USING TIMESTAMP {base + 5} WHERE id = 2 AND seq >= 2",
        t.event(
            "r",
            base + 5,
            {"id": 2, "seq": None},
            {"id": cell(2)},
            start={
                "method": "INCL_START_BOUND",
                "values": [
                    {"name": "seq", "value": "2", "type": "org.apache.cassandra.db.marshal.Int32Type"}
                ],
            },
            end={"method": "INCL_END_BOUND", "values": []},
        ),
    )
    both(
        f"DELETE FROM {keyspace}.{TABLE} USING TIMESTAMP {base + 5} WHERE id = 3",
        t.event(
            "d", base + 5, {"id": 3, "seq": None}, {"id": cell(3), "seq": cell(None, base + 5), **deleted}
        ),
    )
    for statement in statements:
        cql.execute(statement)
    unknown = (None, frame(UNKNOWN_SCHEMA_ID, b"\x02"))
    offsets = t.produce([*records, unknown])

    worker = start_worker([keyspace], registry_url=registry_url)
    wait_applied(pg_dsn, worker.app_id, t.bootstrap, [t.topic], timeout=120)

    diffs = compare_keyspace(cql, pg_dsn, keyspace, [TABLE])
    assert all(d.equal for d in diffs), [d.summary() for d in diffs] + [worker.log_tail()]
    with psycopg.connect(pg_dsn) as conn:
        mirror = conn.execute(
            f'SELECT id, seq, name, qty, data, at, ratio, scores FROM "{keyspace}"."{TABLE}" ORDER BY id, seq'
        ).fetchall()
    at = dt.datetime.fromtimestamp(AT_MS / 1000, dt.UTC)
    assert mirror == [
        (1, 1, None, 50, b"\x00\x01", at, 0.1, [[1, "x"], [2, "y"]]),
        (2, 1, "c", 3, b"\xff", at, -1.25, [[7, "z"]]),
    ]
    letters = dead_letters(pg_dsn, t.topic)
    assert [(o, e) for o, e, _ in letters] == [(offsets[-1], "unknown_schema_id")], worker.log_tail()
    assert str(UNKNOWN_SCHEMA_ID) in letters[0][2]


def retries_logged(worker: WorkerProcess) -> int:
    """How many "transient failure, consumption paused, retrying" lines the worker has logged so far."""
    return worker.log_tail(2000).count("transient failure, consumption paused, retrying")


def test_registry_down_is_retried_not_dead_lettered(
    cql: Any, keyspace: str, avro_topic: AvroTopic, start_worker: StartWorker, pg_dsn: str, registry_url: str
) -> None:
    t = avro_topic
    ts = now_us()
    cql.execute(insert_cql(keyspace, ts, 9, 9, "late", 9, b"\x09", 9.5, {9: "nine"}))
    [offset] = t.produce(
        [t.event("i", ts, {"id": 9, "seq": 9}, row_cells(9, 9, "late", 9, b"\x09", 9.5, {9: "nine"}))]
    )

    down = start_worker([keyspace], registry_url=f"http://127.0.0.1:{free_port()}/apis/ccompat/v7")
    # several retries (not one lucky look): the record is retried, never dead-lettered nor skipped
    try:
        wait_until(lambda: retries_logged(down) >= 3, 90, "the worker did not retry the batch 3 times")
    except TimeoutError as error:
        pytest.fail(f"{error}\n{down.log_tail()}")
    assert "RegistryUnavailable" in down.log_tail(400) or "unreachable" in down.log_tail(400)
    assert dead_letters(pg_dsn, t.topic) == []
    with psycopg.connect(pg_dsn) as conn:
        stored = conn.execute(
            "SELECT next_offset FROM _cdc_checkpoints WHERE group_id = %s AND topic = %s",
            (down.app_id, t.topic),
        ).fetchone()
    assert stored is None or stored[0] <= offset
    # kill -9: a graceful stop would wait for the in-flight batch, which retries until the registry answers
    down.kill9()

    # a fresh group (its old member would hold the partition until the session timeout) with the registry up
    up = start_worker([keyspace], registry_url=registry_url)
    wait_applied(pg_dsn, up.app_id, t.bootstrap, [t.topic], timeout=120)
    assert dead_letters(pg_dsn, t.topic) == []
    diffs = compare_keyspace(cql, pg_dsn, keyspace, [TABLE])
    assert all(d.equal for d in diffs), [d.summary() for d in diffs] + [up.log_tail()]
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute(f'SELECT name, qty FROM "{keyspace}"."{TABLE}"').fetchall() == [("late", 9)]

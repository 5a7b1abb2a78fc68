"""Schema changes while events stream, on a real Cassandra (the schema's source) and PostgreSQL.

Every write is made twice with the same write time: in Cassandra (CQL ``USING TIMESTAMP``, the oracle) and
as the Debezium event the agent would emit (produced to the table's topic: the agent cannot capture UDT
columns, and it stops capturing a table that is dropped and created again, see the README). In turn: a
column is added, a column is dropped, a UDT field is added, and a second table is dropped and created again
with another type for a column, which quarantines exactly that table while the first one keeps streaming,
until ``cdc schema resolve --rebuild``. Mirrors end equal to Cassandra with no dead letter;
``_cdc_schema_metadata``, the ``schema-changes`` topic and ``GET /schemas/<ks>.<table>`` hold each version.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from psycopg import sql

from app.clock import now_us
from app.testing import (
    REPO,
    StartWorker,
    WorkerProcess,
    compare_keyspace,
    create_keyspace,
    create_topics,
    debezium_source,
    produce,
    wait_applied,
    wait_until,
    worker_health,
)
from app.testing import debezium_cell as cell

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra")]


class Source:
    """Writes a row to Cassandra and produces its change event, with one write time."""

    def __init__(self, cql: Any, keyspace: str, bootstrap: str, prefix: str) -> None:
        self.cql, self.keyspace, self.bootstrap, self.prefix = cql, keyspace, bootstrap, prefix

    def topic(self, table: str) -> str:
        return f"{self.prefix}.{self.keyspace}.{table}"

    def put(self, table: str, id_: int, cql_values: dict[str, str], event_values: dict[str, Any]) -> None:
        ts = now_us()
        names = ", ".join(["id", *cql_values])
        values = ", ".join([str(id_), *cql_values.values()])
        self.cql.execute(
            f"INSERT INTO {self.keyspace}.{table} ({names}) VALUES ({values}) USING TIMESTAMP {ts}"
        )
        after = {"id": cell(id_), **{k: cell(v) for k, v in event_values.items()}, "_range_start": None}
        event = {
            "ts_ms": ts // 1000,
            "op": "i",
            "source": debezium_source(self.keyspace, table, ts),
            "after": after,
        }
        produce(self.bootstrap, self.topic(table), [(orjson.dumps({"id": id_}), orjson.dumps(event))])


def dead_letters(pg_dsn: str, topics: list[str]) -> list[Any]:
    with psycopg.connect(pg_dsn) as conn:
        return conn.execute(
            "SELECT error_type, error_message FROM _cdc_dlq_records WHERE topic = ANY(%s)", (topics,)
        ).fetchall()


def versions(pg_dsn: str, keyspace: str, table: str) -> list[tuple[int, str]]:
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            """SELECT version, action FROM _cdc_schema_metadata WHERE keyspace = %s AND "table" = %s
               ORDER BY version""",
            (keyspace, table),
        ).fetchall()
    return [(int(v), str(a)) for v, a in rows]


def converge(cql: Any, pg_dsn: str, worker: WorkerProcess, source: Source, tables: list[str]) -> None:
    diffs: list[Any] = []

    def equal() -> bool:
        wait_applied(pg_dsn, worker.app_id, source.bootstrap, [source.topic(t) for t in tables], timeout=60)
        diffs[:] = compare_keyspace(cql, pg_dsn, source.keyspace, tables)
        return all(d.equal for d in diffs)

    try:
        wait_until(equal, 120, f"{tables} did not converge")
    except TimeoutError as error:
        details = [(d.summary(), d.missing[:3], list(d.different.items())[:3]) for d in diffs]
        letters = dead_letters(pg_dsn, [source.topic(t) for t in tables])
        pytest.fail(f"{error}: {details}; dead letters {letters[:3]}\n{worker.log_tail()}")


async def schema_messages(bootstrap: str, key: bytes, timeout: float) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        "schema-changes", bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                found.extend(orjson.loads(r.value) for r in records if r.key == key)
            if found and time.monotonic() > deadline - timeout + 5:
                break
        return found
    finally:
        await consumer.stop()


def test_schema_changes_mid_stream_converge_without_dead_letters_and_a_recreated_table_is_quarantined(
    cql: Any,
    keyspace: str,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    topics: list[str],
) -> None:
    create_keyspace(cql, keyspace)
    cql.execute(f"CREATE TYPE {keyspace}.info_t (a int)")
    cql.execute(f"CREATE TABLE {keyspace}.items (id int PRIMARY KEY, v int, info frozen<info_t>)")
    cql.execute(f"CREATE TABLE {keyspace}.other (id int PRIMARY KEY, v int)")
    source = Source(cql, keyspace, kafka_bootstrap, topic_prefix)
    topics.extend(source.topic(t) for t in ("items", "other"))
    create_topics(kafka_bootstrap, topics, partitions=2)
    worker = start_worker([keyspace], extra_env={"CDC_SINK__SCHEMA_CHECK_INTERVAL_S": "1"})

    for i in range(10):
        source.put("items", i, {"v": str(i), "info": f"{{a: {i}}}"}, {"v": i, "info": {"a": i}})
        source.put("other", i, {"v": str(i)}, {"v": i})
    converge(cql, pg_dsn, worker, source, ["items", "other"])

    cql.execute(f"ALTER TABLE {keyspace}.items ADD w text")  # events name it right away
    for i in range(10, 20):
        source.put("items", i, {"v": str(i), "w": f"'w{i}'"}, {"v": i, "w": f"w{i}"})
    cql.execute(f"ALTER TABLE {keyspace}.items DROP v")
    for i in range(20, 30):
        source.put("items", i, {"w": f"'w{i}'"}, {"w": f"w{i}"})
    cql.execute(f"ALTER TYPE {keyspace}.info_t ADD b text")  # a new field in the events' values
    for i in range(30, 40):
        source.put("items", i, {"info": f"{{a: {i}, b: 'b{i}'}}"}, {"info": {"a": i, "b": f"b{i}"}})
    converge(cql, pg_dsn, worker, source, ["items"])
    assert dead_letters(pg_dsn, topics) == []
    assert "consumption paused" not in worker.log_text(), worker.log_tail()  # followed online, no stall

    # other: dropped, then created again with another type for v
    cql.execute(f"DROP TABLE {keyspace}.other")
    wait_until(
        lambda: (
            len(versions(pg_dsn, keyspace, "other")) > 0
            and versions(pg_dsn, keyspace, "other")[-1][1] == "dropped"
        ),
        30,
        "the drop was not recorded",
    )
    cql.execute(f"CREATE TABLE {keyspace}.other (id int PRIMARY KEY, v text)")
    for i in range(100, 105):
        source.put("other", i, {"v": f"'t{i}'"}, {"v": f"t{i}"})
    for i in range(40, 45):  # items keeps streaming meanwhile
        source.put("items", i, {"w": f"'w{i}'"}, {"w": f"w{i}"})

    def quarantined() -> bool:
        code, body = worker_health(worker)
        schema = body.get("components", {}).get("schema", {})
        return (
            code == 503 and schema.get("status") == "down" and f"{keyspace}.other" in schema.get("detail", "")
        )

    try:
        wait_until(quarantined, 60, "the recreated table was not quarantined")
    except TimeoutError as error:
        pytest.fail(f"{error}: {worker_health(worker)}\n{worker.log_tail()}")
    converge(cql, pg_dsn, worker, source, ["items"])  # exactly that table waits
    with psycopg.connect(pg_dsn) as conn:
        old = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(keyspace, "other"))
        ).fetchone()
    assert old == (10,)  # the old rows, untouched; the new events wait in Kafka

    resolved = subprocess.run(
        [sys.executable, "-m", "app", "schema", "resolve", f"{keyspace}.other", "--rebuild", "--json"],
        cwd=REPO,
        env={**worker.env(), "CDC_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resolved.returncode == 0, resolved.stderr
    old_mirror = json.loads(resolved.stdout.strip().splitlines()[-1])["old_mirror"]
    converge(cql, pg_dsn, worker, source, ["items", "other"])
    wait_until(lambda: worker_health(worker)[0] == 200, 60, "/health did not return to 200")
    assert dead_letters(pg_dsn, topics) == []
    with psycopg.connect(pg_dsn) as conn:
        kept = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*old_mirror.split(".")))
        ).fetchone()
        v_kept = conn.execute(
            "SELECT col_description(%s::regclass, attnum) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'v'",
            (f'"{keyspace}"."items"', f'"{keyspace}"."items"'),
        ).fetchone()
    assert kept == (10,)
    assert v_kept is not None
    assert "dropped in Cassandra" in str(v_kept[0])

    items = [a for _, a in versions(pg_dsn, keyspace, "items")]
    assert items[0] == "created", items
    assert set(items[1:]) == {"altered"}, items
    with psycopg.connect(pg_dsn) as conn:
        recorded = conn.execute(
            """SELECT c->>'kind', c->>'column' FROM _cdc_schema_metadata, jsonb_array_elements(changes) c
               WHERE keyspace = %s AND "table" = 'items'""",
            (keyspace,),
        ).fetchall()
    assert {("column_added", "w"), ("column_dropped", "v"), ("type_changed", "info")} <= set(recorded), (
        recorded
    )
    other = [a for _, a in versions(pg_dsn, keyspace, "other")]
    assert other[:1] == ["created"], other
    assert other[-3:] == ["quarantined", "resolved", "created"], other
    assert "dropped" in other

    with urllib.request.urlopen(
        f"http://127.0.0.1:{worker.web_port}/schemas/{keyspace}.items", timeout=5
    ) as r:
        body = json.loads(r.read())
    assert [v["action"] for v in body["versions"]] == items
    published = asyncio.run(schema_messages(kafka_bootstrap, f"{keyspace}.items".encode(), timeout=30))
    assert sorted(m["version"] for m in published) == list(range(1, len(items) + 1))

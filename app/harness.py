"""Running the pipeline against a stack: CDC keyspaces the agent has captured, worker subprocesses, waiting
for catch-up, comparing keyspaces. Used by ``cdc demo``, the end-to-end tests and the benchmarks."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.cassandra_schema import table_schema
from app.compare import TableDiff, compare_tables
from models.mirror_spec import spec_for

REPO = Path(__file__).resolve().parent.parent


def paced(count: int, rate: float) -> Iterator[int]:
    """Yield ``0 .. count - 1``, sleeping so that ``i`` comes no earlier than ``i / rate`` s after the start."""
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield i


def debezium_source(keyspace: str, table: str, ts_us: int, **extra: Any) -> dict[str, Any]:
    """The ``source`` block of a change event exactly as the agent (3.4.1.Final) writes it."""
    return {
        "version": "3.4.1.Final",
        "connector": "cassandra",
        "name": "cdc",
        "ts_ms": ts_us // 1000,
        "snapshot": "false",
        "db": "NULL",
        "sequence": None,
        "ts_us": ts_us,
        "ts_ns": ts_us * 1000,
        "cluster": "cdc-local",
        "file": "CommitLog-7-1795686226414.log",
        "pos": 48575,
        "keyspace": keyspace,
        "table": table,
        **extra,
    }


def debezium_cell(value: Any, deletion_ts: int | None = None) -> dict[str, Any]:
    """One touched column in an event's ``after``."""
    return {"value": value, "deletion_ts": deletion_ts, "set": True}


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a worker's web server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def create_cdc_keyspace(
    session: Any, keyspace: str, tables: dict[str, str], topic_prefix: str, bootstrap: str
) -> None:
    """Create ``keyspace`` and CDC tables (``name -> CQL column/key definition``), then wait until the Debezium
    agent captures each table (it misses tables created in the same schema refresh as their keyspace)."""
    session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    time.sleep(3)
    for name, definition in tables.items():
        session.execute(f"CREATE TABLE {keyspace}.{name} ({definition}) WITH cdc = true")
    time.sleep(2)
    for name in tables:
        wait_captured(session, keyspace, name, topic_prefix, bootstrap)


PROBE_VALUES: dict[str, object] = {
    "int": -987654,
    "bigint": -987654,
    "smallint": -9876,
    "text": "__probe__",
    "ascii": "__probe__",
    "uuid": uuid.UUID("00000000-0000-4000-8000-00000000dead"),
    "timeuuid": uuid.UUID("00000000-0000-1000-8000-00000000dead"),
    "timestamp": datetime.datetime(1970, 1, 2, tzinfo=datetime.UTC),
    "date": datetime.date(1970, 1, 2),
}


def wait_captured(
    session: Any, keyspace: str, table: str, topic_prefix: str, bootstrap: str, timeout: float = 60
) -> None:
    """Write and delete a probe row until its events show up on the table's topic."""
    meta = session.cluster.metadata.keyspaces[keyspace].tables[table]
    key_cols = [c for c in (*meta.partition_key, *meta.clustering_key)]
    unsupported = [c.name for c in key_cols if c.cql_type not in PROBE_VALUES]
    if unsupported:
        raise ValueError(f"no probe value for key columns {unsupported} of {keyspace}.{table}")
    values = [PROBE_VALUES[c.cql_type] for c in key_cols]
    names = ", ".join(c.name for c in key_cols)
    marks = ", ".join("?" for _ in key_cols)
    where = " AND ".join(f"{c.name} = ?" for c in key_cols)
    insert = session.prepare(f"INSERT INTO {keyspace}.{table} ({names}) VALUES ({marks})")
    delete = session.prepare(f"DELETE FROM {keyspace}.{table} WHERE {where}")
    topic = f"{topic_prefix}.{keyspace}.{table}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.execute(insert, values)
        session.execute(delete, values)
        if asyncio.run(_topic_size(bootstrap, topic)) > 0:
            return
        time.sleep(2)
    raise TimeoutError(f"the Debezium agent did not capture {keyspace}.{table} within {timeout}s")


async def _topic_size(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return 0
        ends = await consumer.end_offsets(tps)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or set())]
        return (
            {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(tps)).items()}
            if tps
            else {}
        )
    finally:
        await consumer.stop()


def wait_applied(
    pg_dsn: str, group_id: str, bootstrap: str, topics: Sequence[str], timeout: float = 120
) -> None:
    """Wait until the worker's checkpoints in PostgreSQL reach the end of every topic."""
    deadline = time.monotonic() + timeout
    ends: dict[tuple[str, int], int] = {}
    done: dict[tuple[str, int], int] = {}
    while time.monotonic() < deadline:
        ends = asyncio.run(end_offsets(bootstrap, topics))
        with psycopg.connect(pg_dsn) as conn:
            try:
                rows = conn.execute(
                    "SELECT topic, partition, next_offset FROM _cdc_checkpoints WHERE group_id = %s",
                    (group_id,),
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                rows = []
        done = {(t, p): o for t, p, o in rows}
        if ends and all(done.get(tp, -1) >= end for tp, end in ends.items()):
            return
        time.sleep(1)
    raise TimeoutError(f"worker did not catch up: end offsets {ends}, checkpoints {done}")


@dataclass
class WorkerProcess:
    """``cdc worker`` as a real subprocess, replicating only ``keyspaces``, with its own group and state."""

    keyspaces: list[str]
    workdir: Path
    web_port: int
    app_id: str = field(default_factory=lambda: unique("it_worker"))
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.app_id}.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "CDC_APP_ID": self.app_id,
                "CDC_DATA_DIR": str(self.workdir / f"{self.app_id}-data"),
                "CDC_WEB__PORT": str(self.web_port),
                "CDC_CASSANDRA__KEYSPACES": json.dumps(self.keyspaces),
                "CDC_SINK__TTL_SWEEP_INTERVAL_S": "1",
                **self.extra_env,
            }
        )
        return env

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "worker", "-l", "info"],
            cwd=REPO,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill9()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def compare_keyspace(session: Any, pg_dsn: str, keyspace: str, tables: Iterable[str]) -> list[TableDiff]:
    cluster = session.cluster
    cluster.refresh_schema_metadata()
    pairs = []
    for name in tables:
        schema = table_schema(cluster, keyspace, name)
        pairs.append((schema, spec_for(schema)))
    with psycopg.connect(pg_dsn) as conn:
        return compare_tables(session, conn, pairs)

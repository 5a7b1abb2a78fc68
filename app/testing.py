"""Test support for cass-cdc-pg, public like :mod:`structlog.testing`: the one place for what the tests, the
benchmarks and ``cdc demo`` need to build events and drive a pipeline on a running stack.

- Change events: :func:`debezium_source`, :func:`debezium_cell` (the agent's JSON shape),
  :func:`debezium_like_schemas` (the same shape as Avro schemas).
- Waiting: :func:`wait_until` (a condition with a deadline and a message; never a bare sleep).
- Names and ports: :func:`unique`, :func:`free_port`; :class:`TcpProxy` (a forwarder that can be cut and
  restored, to make a dependency unreachable for one worker without stopping the shared service).
- Kafka: :func:`create_topics`, :func:`delete_topics`, :func:`produce`, :func:`end_offsets`.
- Cassandra: :func:`create_keyspace`, :func:`create_cdc_keyspace` and :func:`wait_captured` (until the
  Debezium agent captures a table).
- PostgreSQL: :func:`drop_pg_schema` (a keyspace's mirror).
- The worker: :class:`WorkerProcess` (``cdc worker`` as a subprocess), :func:`wait_applied` (until its
  checkpoints reach the end of the topics), :func:`compare_keyspace` (Cassandra against PostgreSQL).

It ships in the wheel so that the benchmarks and the demo can use it; nothing in the worker imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cassandra.metadata import protect_name
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app import cql
from app.cassandra_schema import table_schema
from app.compare import TableDiff, compare_tables
from models.cql_types import parse_cql_type
from models.mirror_spec import spec_for
from models.table_schema import Column, TableSchema
from models.transforms import Rules, compile_plan

_T = TypeVar("_T")


class CqlWriter(threading.Thread):
    """Writes rows ``(id, v, tags)`` and set additions with CQL until stopped (about 20 statements a second):
    batches then read collections back. ``count``: rows inserted so far."""

    DEFINITION = "id int PRIMARY KEY, v int, tags set<text>"
    """The table it writes to."""

    def __init__(self, cql: Any, keyspace: str, table: str) -> None:
        super().__init__(daemon=True)
        name = f"{protect_name(keyspace)}.{protect_name(table)}"
        self.insert = cql.prepare(f"INSERT INTO {name} (id, v, tags) VALUES (?, ?, ?)")  # noqa: S608 - quoted
        self.add = cql.prepare(f"UPDATE {name} SET tags = tags + ? WHERE id = ?")  # noqa: S608 - quoted
        self.cql = cql
        self.stopped = threading.Event()
        self.count = 0

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            i = self.count
            self.cql.execute(self.insert, (i, i * 10, {f"t{i}"}))
            if i > 0:
                self.cql.execute(self.add, ({f"u{i}"}, i - 1))
            self.count += 1


def wait_until(
    predicate: Callable[[], _T], timeout: float, message: str | Callable[[], str], interval: float = 0.5
) -> _T:
    """Call ``predicate`` until it returns a truthy value (returned) or ``timeout`` seconds pass; then raise
    :class:`TimeoutError` with ``message`` (called, when callable, after the last attempt, so it can show
    the last state). The predicate runs at least once."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"{text} (waited {timeout:g}s)")
        time.sleep(interval)


class TcpProxy:
    """A TCP forwarder ``127.0.0.1:<port>`` -> ``target`` that can be cut and restored.

    :meth:`cut` drops every forwarded connection and, until :meth:`restore`, closes each new one as soon as
    it is accepted (clients see the server go away). The listening socket stays open throughout: giving the
    port back and binding it again fails when the kernel hands it out meanwhile as another connection's
    ephemeral source port. One thread accepts, two threads pump each connection. Use it as a context manager
    (closed on exit)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._cut = threading.Event()
        self._stop = threading.Event()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.1)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener, self._stop), daemon=True).start()

    def dsn(self, dsn: str) -> str:
        """``dsn`` (URL or key=value) pointed at this proxy instead of its host and port."""
        return make_conninfo(dsn, host="127.0.0.1", port=str(self.port))

    def restore(self) -> None:
        """Forward new connections again."""
        self._cut.clear()

    def cut(self) -> None:
        """Drop every forwarded connection and refuse new ones until :meth:`restore`."""
        self._cut.set()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self.cut()
        self._stop.set()
        self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)
            with self._lock:
                self._sockets -= {src, dst}


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


REPO = Path(__file__).resolve().parent.parent
LOG_APPEND_TIME = 1
"""``ConsumerRecord.timestamp_type`` of a record stamped by the broker (topic ``LogAppendTime``)."""


def cql_table(
    keyspace: str,
    table: str,
    partition_key: dict[str, str],
    clustering: dict[str, str] | None = None,
    columns: dict[str, str] | None = None,
    descending: tuple[bool, ...] | None = None,
) -> TableSchema:
    """A table's schema from ``{column: CQL type}`` maps, as :func:`app.cassandra_schema.table_schema` reads
    it from Cassandra (clustering ascending unless ``descending`` says otherwise)."""

    def typed(names: dict[str, str] | None) -> tuple[Column, ...]:
        return tuple(Column(n, parse_cql_type(t)) for n, t in (names or {}).items())

    keys = typed(clustering)
    return TableSchema(
        keyspace=keyspace,
        table=table,
        partition_key=typed(partition_key),
        clustering=keys,
        descending=descending if descending is not None else (False,) * len(keys),
        columns=typed(columns),
    )


# --- change events ----------------------------------------------------------------------------------------


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


def _strings(*names: str) -> list[dict[str, Any]]:
    """Avro record fields of type string."""
    return [{"name": name, "type": "string"} for name in names]


def debezium_like_schemas(
    keyspace: str,
    table: str,
    key: list[tuple[str, Any]],
    columns: list[tuple[str, Any]],
    namespace: str = "cdc",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(key schema, value schema)`` shaped like the Debezium Cassandra agent's events under Confluent's
    AvroConverter, except that every cell record has its own name (``cell_<column>``), which the agent does
    not do (see the module docstring). ``key`` / ``columns`` are ``(name, Avro type)``; key values are
    optional (clustering values are null in partition and range deletes)."""
    space = f"{namespace}.{keyspace}.{table}"
    key_schema = {
        "type": "record",
        "name": "Key",
        "namespace": space,
        "fields": [{"name": n, "type": ["null", t], "default": None} for n, t in key],
    }
    cells = [
        {
            "name": name,
            "type": [
                "null",
                {
                    "type": "record",
                    "name": f"cell_{name}",
                    "fields": [
                        {"name": "value", "type": ["null", avro_type], "default": None},
                        {"name": "deletion_ts", "type": ["null", "long"], "default": None},
                        {"name": "set", "type": "boolean"},
                    ],
                },
            ],
            "default": None,
        }
        for name, avro_type in [*key, *columns]
    ]
    bound = {
        "type": "record",
        "name": "range_bound",
        "fields": [
            {"name": "method", "type": "string"},
            {
                "name": "values",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "clustering_value",
                        "fields": _strings("name", "value", "type"),
                    },
                },
            },
        ],
    }
    optional_string = ["null", "string"]
    source = {
        "type": "record",
        "name": "Source",
        "namespace": "io.debezium.connector.cassandra",
        "fields": [
            *_strings("version", "connector", "name"),
            {"name": "ts_ms", "type": "long"},
            {"name": "snapshot", "type": optional_string, "default": None},
            {"name": "db", "type": "string"},
            {"name": "sequence", "type": optional_string, "default": None},
            {"name": "ts_us", "type": ["null", "long"], "default": None},
            {"name": "ts_ns", "type": ["null", "long"], "default": None},
            *_strings("cluster", "file"),
            {"name": "pos", "type": "int"},
            *_strings("keyspace", "table"),
        ],
    }
    after = {
        "type": "record",
        "name": "after",
        "fields": [
            *cells,
            {"name": "_range_start", "type": ["null", bound], "default": None},
            {"name": "_range_end", "type": ["null", "range_bound"], "default": None},
        ],
    }
    value_schema = {
        "type": "record",
        "name": "Envelope",
        "namespace": space,
        "fields": [
            {"name": "ts_ms", "type": "long"},
            {"name": "op", "type": "string"},
            {"name": "source", "type": source},
            {"name": "after", "type": after},
        ],
    }
    return key_schema, value_schema


# --- names and ports --------------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a worker's web server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --- Kafka ------------------------------------------------------------------------------------------------


async def _admin(bootstrap: str, action: Callable[[AIOKafkaAdminClient], Awaitable[Any]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await action(admin)
    finally:
        await admin.close()


def create_topics(
    bootstrap: str, topics: Iterable[str], *, log_append_time: bool = False, partitions: int = 1
) -> None:
    """``partitions`` each (default one); with ``log_append_time`` a record's time is the broker's append time
    (the broker default is CreateTime, stamped by the producer)."""
    config = {"message.timestamp.type": "LogAppendTime"} if log_append_time else None
    new = [NewTopic(t, partitions, 1, topic_configs=config) for t in topics]
    asyncio.run(_admin(bootstrap, lambda a: a.create_topics(new)))


def delete_topics(bootstrap: str, topics: Iterable[str]) -> None:
    names = list(topics)
    asyncio.run(_admin(bootstrap, lambda a: a.delete_topics(names)))


def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]
) -> list[tuple[int, int]]:
    """Send ``(key, value)`` records in order (acks=all, idempotent); ``(partition, offset)`` of each."""

    async def send() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            where = []
            for key, value in records:
                meta = await producer.send_and_wait(topic, value=value, key=key)
                where.append((meta.partition, meta.offset))
            return where
        finally:
            await producer.stop()

    return asyncio.run(send())


async def end_offsets(
    bootstrap: str, topics: Sequence[str], kafka_auth: Mapping[str, Any] | None = None
) -> dict[tuple[str, int], int]:
    """``kafka_auth``: security arguments (e.g. the TLS stack's ``kafka_client_kwargs()``)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **(kafka_auth or {}))
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


async def topic_records(bootstrap: str, topic: str, timeout: float = 60) -> list[Any]:
    """Every record of ``topic`` up to its end offsets at the call (aiokafka ``ConsumerRecord`` objects, by
    partition then offset; what arrived within ``timeout`` seconds): for a test's diagnostics."""
    ends = await end_offsets(bootstrap, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: list[Any] = []
    try:
        wanted = [TopicPartition(t, p) for (t, p), end in ends.items() if end > 0]
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        left, deadline = set(wanted), time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                found.extend(records)
                if records[-1].offset + 1 >= ends[(tp.topic, tp.partition)]:
                    left.discard(tp)
        return sorted(found, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


def _topic_size(bootstrap: str, topic: str, kafka_auth: Mapping[str, Any] | None = None) -> int:
    return sum(asyncio.run(end_offsets(bootstrap, [topic], kafka_auth)).values())


# --- Cassandra --------------------------------------------------------------------------------------------


def create_keyspace(session: Any, keyspace: str) -> None:
    """``keyspace`` with SimpleStrategy, one replica (the local stack has one node)."""
    session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )


def create_cdc_keyspace(
    session: Any,
    keyspace: str,
    tables: dict[str, str],
    topic_prefix: str,
    bootstrap: str,
    agent_log: Path | None = None,
    timeout: float = 60,
    kafka_auth: Mapping[str, Any] | None = None,
) -> None:
    """Create ``keyspace`` and CDC tables (``name -> CQL column/key definition``), then wait until the Debezium
    agent captures each table.

    The agent misses tables created in the same schema refresh as their keyspace, so the tables are created
    only once the agent has added the keyspace to its schema (its log line ``Added keyspace [CREATE KEYSPACE
    <ks>``), and each table counts as captured once the agent has cached its schema and a probe row's events
    reach the table's topic (:func:`wait_captured`). ``agent_log`` is the agent's log file (the stack's
    ``logs/debezium.log``; default: under ``$CDC_STACK_DIR`` or ``<repo>/.stack`` when it exists); without
    one, only the driver's schema agreement on the keyspace is awaited."""
    log = _AgentLog(agent_log if agent_log is not None else _default_agent_log())
    create_keyspace(session, keyspace)
    wait_until(
        lambda: (
            keyspace in session.cluster.metadata.keyspaces
            and session.cluster.control_connection.wait_for_schema_agreement(wait_time=5)
        ),
        timeout,
        f"Cassandra did not agree on the schema of keyspace {keyspace}",
    )
    log.wait_for(
        f"Added keyspace [CREATE KEYSPACE {keyspace} ", timeout, f"the agent to add keyspace {keyspace}"
    )
    for name, definition in tables.items():
        session.execute(f"CREATE TABLE {keyspace}.{name} ({definition}) WITH cdc = true")
    for name in tables:
        log.wait_for(
            f"Added the schema for {keyspace}.{name} to table schema cache",
            timeout,
            f"the agent to cache the schema of {keyspace}.{name}",
        )
        wait_captured(session, keyspace, name, topic_prefix, bootstrap, timeout, kafka_auth)


def _default_agent_log() -> Path | None:
    path = Path(os.environ.get("CDC_STACK_DIR") or REPO / ".stack") / "logs" / "debezium.log"
    return path if path.exists() else None


class _AgentLog:
    """Lines the Debezium agent logs from now on (a missing file means: nothing to wait for)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = path.stat().st_size if path is not None else 0

    def wait_for(self, text: str, timeout: float, what: str) -> None:
        if self.path is None:
            return
        path = self.path

        def seen() -> bool:
            size = path.stat().st_size
            if size < self.offset:  # rotated or truncated: read it from the start
                self.offset = 0
            with path.open("rb") as f:
                f.seek(self.offset)
                return text.encode() in f.read()

        wait_until(seen, timeout, f"waited for {what}: no {text!r} in {path}")


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
    session: Any,
    keyspace: str,
    table: str,
    topic_prefix: str,
    bootstrap: str,
    timeout: float = 60,
    kafka_auth: Mapping[str, Any] | None = None,
) -> None:
    """Write and delete a probe row until its events show up on the table's topic."""
    meta = session.cluster.metadata.keyspaces[keyspace].tables[table]
    key_cols = [c for c in (*meta.partition_key, *meta.clustering_key)]
    unsupported = [c.name for c in key_cols if c.cql_type not in PROBE_VALUES]
    if unsupported:
        raise ValueError(f"no probe value for key columns {unsupported} of {keyspace}.{table}")
    values = [PROBE_VALUES[c.cql_type] for c in key_cols]
    columns = cql.names(c.name for c in key_cols)
    marks = ", ".join("?" for _ in key_cols)
    where = cql.key_condition(c.name for c in key_cols)
    target = cql.table_name(keyspace, table)
    insert = session.prepare(f"INSERT INTO {target} ({columns}) VALUES ({marks})")  # noqa: S608 (protected names)
    delete = session.prepare(f"DELETE FROM {target} WHERE {where}")  # noqa: S608 (protected names)
    topic = f"{topic_prefix}.{keyspace}.{table}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.execute(insert, values)
        session.execute(delete, values)
        if _topic_size(bootstrap, topic, kafka_auth) > 0:
            return
        time.sleep(1)  # polling under the deadline: write the probe again
    raise TimeoutError(f"the Debezium agent did not capture {keyspace}.{table} within {timeout}s")


def drop_pg_schema(pg_dsn: str, schema: str) -> None:
    """Drop a keyspace's mirror schema in PostgreSQL, if there is one, with its recorded transform plans."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        if conn.execute("SELECT to_regclass('_cdc_transform_plans') IS NOT NULL").fetchone() == (True,):
            conn.execute("DELETE FROM _cdc_transform_plans WHERE keyspace = %s", (schema,))


# --- the worker -----------------------------------------------------------------------------------------


def wait_applied(
    pg_dsn: str,
    group_id: str,
    bootstrap: str,
    topics: Sequence[str],
    timeout: float = 120,
    kafka_auth: Mapping[str, Any] | None = None,
) -> None:
    """Wait until the worker's checkpoints in PostgreSQL reach the end of every topic (a partition that has
    never held a record, end offset 0, needs none: its checkpoint stays at the claim's -1)."""
    deadline = time.monotonic() + timeout
    ends: dict[tuple[str, int], int] = {}
    done: dict[tuple[str, int], int] = {}
    while time.monotonic() < deadline:
        ends = asyncio.run(end_offsets(bootstrap, topics, kafka_auth))
        with psycopg.connect(pg_dsn) as conn:
            try:
                rows = conn.execute(
                    "SELECT topic, partition, next_offset FROM _cdc_checkpoints WHERE group_id = %s",
                    (group_id,),
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                rows = []
        done = {(t, p): o for t, p, o in rows}
        if ends and all(end == 0 or done.get(tp, -1) >= end for tp, end in ends.items()):
            return
        time.sleep(1)
    raise TimeoutError(f"worker did not catch up: end offsets {ends}, checkpoints {done}")


@dataclass
class WorkerProcess:
    """``cdc worker`` as a real subprocess, replicating only ``keyspaces``, with its own group and state.

    The endpoints (``pg_dsn``, ``kafka_bootstrap``, ``topic_prefix``, ``cassandra_host``/``cassandra_port``,
    ``registry_url``) are passed to the worker explicitly when given (the tests' ``start_worker`` gives them
    all, from the stack fixtures); ``registry_url=None`` means the worker runs without a schema registry,
    whatever the environment says."""

    keyspaces: list[str]
    workdir: Path
    web_port: int
    app_id: str = field(default_factory=lambda: unique("it_worker"))
    extra_env: dict[str, str] = field(default_factory=dict)
    pg_dsn: str | None = None
    kafka_bootstrap: str | None = None
    topic_prefix: str | None = None
    cassandra_host: str | None = None
    cassandra_port: int | None = None
    registry_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.app_id}.log"

    def endpoints(self) -> dict[str, str]:
        """The endpoint variables of the worker's environment (only those given)."""
        given = {
            "CDC_POSTGRES__DSN": self.pg_dsn,
            "CDC_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "CDC_KAFKA__TOPIC_PREFIX": self.topic_prefix,
            "CDC_CASSANDRA__HOSTS": json.dumps([self.cassandra_host]) if self.cassandra_host else None,
            "CDC_CASSANDRA__PORT": str(self.cassandra_port) if self.cassandra_port else None,
            "CDC_REGISTRY__URL": self.registry_url,
        }
        return {k: v for k, v in given.items() if v is not None}

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CDC_REGISTRY__URL", None)
        env.update(self.endpoints())
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

    def cli_env(self) -> dict[str, str]:
        """The environment of a ``cdc`` command run against this worker (its endpoints, app id, transform
        rules, Vault settings and PostgreSQL credentials)."""
        prefixes = ("CDC_TRANSFORM", "CDC_VAULT__", "CDC_POSTGRES__")  # rules, secrets, credentials
        rules = {k: v for k, v in self.extra_env.items() if k.startswith(prefixes)}
        return {**os.environ, **self.endpoints(), "CDC_APP_ID": self.app_id, **rules}

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

    def log_text(self) -> str:
        """The worker's whole log so far (empty before it has written one)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def run_cdc(worker: WorkerProcess, *args: str, timeout: float = 600) -> tuple[int, dict[str, Any]]:
    """Run ``cdc <args> --json`` against the worker's endpoints (its app id too); exit code and the JSON
    document printed (the last line of stdout)."""
    done = subprocess.run(
        [sys.executable, "-m", "app", *args, "--json"],
        cwd=REPO,
        env=worker.cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    out = done.stdout.strip()
    assert out, f"no output (rc {done.returncode}): {done.stderr[-3000:]}"
    return done.returncode, json.loads(out.splitlines()[-1])


def mirror_ids(pg_dsn: str, schema: str, table: str, column: str = "id") -> list[object]:
    """The ``column`` values of a mirror, sorted ([] while the mirror does not exist yet)."""
    query = sql.SQL("SELECT {} FROM {} ORDER BY 1").format(
        sql.Identifier(column), sql.Identifier(schema, table)
    )
    with psycopg.connect(pg_dsn) as conn:
        try:
            return [row[0] for row in conn.execute(query)]
        except psycopg.errors.UndefinedTable:
            return []


def worker_health(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    """Status code and JSON body of the worker's ``/health`` (0 and {} while its web server is not up)."""
    url = f"http://127.0.0.1:{worker.web_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())
    except OSError:
        return 0, {}


StartWorker = Callable[..., WorkerProcess]
"""``start(keyspaces, **WorkerProcess fields) -> a started WorkerProcess`` (the tests' ``start_worker``)."""


def compare_keyspace(
    session: Any,
    pg_dsn: str,
    keyspace: str,
    tables: Iterable[str],
    targets: Mapping[str, str] | None = None,
    transforms: tuple[Rules, bytes] | None = None,
) -> list[TableDiff]:
    """Compare Cassandra's ``keyspace.<table>`` with its mirror, row by row (:mod:`app.compare`'s oracle);
    ``targets`` as the worker's ``CDC_SINK__TABLE_TARGETS`` (``{"ks.tbl": "schema.name"}``); with
    ``transforms`` (rules, hash key), against Cassandra's rows transformed."""
    cluster = session.cluster
    cluster.refresh_schema_metadata()
    pairs = []
    for name in tables:
        schema = table_schema(cluster, keyspace, name)
        plan = compile_plan(schema, *transforms) if transforms is not None else None
        pairs.append((schema, spec_for(schema, (targets or {}).get(f"{keyspace}.{name}"), plan)))
    with psycopg.connect(pg_dsn) as conn:
        return compare_tables(session, conn, pairs)

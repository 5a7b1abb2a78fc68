"""``cdc demo``: the whole job on the local stack, narrated.

Creates the demo keyspace (waiting until the Debezium agent captures each table), starts a worker process
replicating it, writes a realistic mix while printing a live summary (events/s, lag, row counts on both
sides), then waits for the worker to catch up and compares every demo table row by row.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from app.cassandra_session import connect
from app.compare import TableDiff
from app.demo import generator, schema
from app.settings import Settings
from app.sink.checkpoints import ensure_meta
from app.testing import WorkerProcess, compare_keyspace, end_offsets, wait_applied, wait_captured

Say = Callable[[str], None]
DEMO_APP_ID = "cdc-demo"


def create_captured_schema(session: Any, settings: Settings, say: Say) -> None:
    """Create the demo schema; the agent misses tables created in the same schema refresh as their keyspace."""
    existing = session.cluster.metadata.keyspaces.get(schema.KEYSPACE)
    session.execute(schema.STATEMENTS[0])
    if existing is None:
        time.sleep(3)
    for statement in schema.STATEMENTS[1:]:
        session.execute(statement)
    session.cluster.refresh_schema_metadata()
    for table in schema.TABLES:
        say(f"waiting until the Debezium agent captures {schema.KEYSPACE}.{table} ...")
        wait_captured(
            session, schema.KEYSPACE, table, settings.kafka.topic_prefix, settings.kafka.bootstrap_servers
        )


def _topics(settings: Settings) -> list[str]:
    return [f"{settings.kafka.topic_prefix}.{schema.KEYSPACE}.{t}" for t in schema.TABLES]


def _progress(conn: psycopg.Connection[Any], settings: Settings) -> tuple[int, int]:
    """(events consumed by the demo worker, events still to apply)."""
    ends = asyncio.run(end_offsets(settings.kafka.bootstrap_servers, _topics(settings)))
    rows = conn.execute(
        "SELECT topic, partition, next_offset, events FROM _cdc_checkpoints WHERE group_id = %s",
        (DEMO_APP_ID,),
    ).fetchall()
    done = {(t, p): o for t, p, o, _ in rows}
    consumed = sum(e for *_, e in rows)
    lag = sum(max(0, end - max(done.get(tp, 0), 0)) for tp, end in ends.items())
    return consumed, lag


def _counts(session: Any, conn: psycopg.Connection[Any]) -> str:
    parts = []
    for table in schema.TABLES:
        c = session.execute(f"SELECT count(*) FROM {schema.KEYSPACE}.{table}").one()[0]
        try:
            p = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema.KEYSPACE, table))
            ).fetchone()
            pg = str(p[0]) if p else "?"
        except psycopg.errors.UndefinedTable:
            conn.rollback()
            pg = "-"
        parts.append(f"{table} {c}/{pg}")
    return "  ".join(parts)


def stable_diffs(session: Any, pg_dsn: str, tables: list[str], pause_s: float = 3.0) -> list[TableDiff]:
    """Compare twice and keep only differences seen both times: rows whose TTL passes during a comparison
    differ for a moment (Cassandra expires them at read time, the worker's sweep a second later)."""
    first = compare_keyspace(session, pg_dsn, schema.KEYSPACE, tables)
    if all(d.equal for d in first):
        return first
    time.sleep(pause_s)
    second = compare_keyspace(session, pg_dsn, schema.KEYSPACE, tables)
    for a, b in zip(first, second, strict=True):
        b.missing = [k for k in b.missing if k in set(a.missing)]
        b.extra = [k for k in b.extra if k in set(a.extra)]
        b.different = {k: v for k, v in b.different.items() if k in a.different}
    return second


def route_driver_log(path: Path) -> None:
    """cassandra-driver's messages (e.g. the server's "Aggregation query used without partition key" for the
    live row counts) go to ``path``, not between the summary lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    driver = logging.getLogger("cassandra")
    for handler in list(driver.handlers):
        driver.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    driver.addHandler(handler)
    driver.propagate = False


def run_demo(settings: Settings, rate: float, seconds: float, say: Say) -> bool:
    route_driver_log(Path(settings.data_dir).resolve() / "cdc-demo-driver.log")
    pg_dsn = settings.postgres.dsn.get_secret_value()
    cluster, session = connect(settings.cassandra)
    worker = WorkerProcess(
        [schema.KEYSPACE],
        Path(settings.data_dir).resolve(),
        settings.web.port,
        app_id=DEMO_APP_ID,
        pg_dsn=pg_dsn,
        kafka_bootstrap=settings.kafka.bootstrap_servers,
        topic_prefix=settings.kafka.topic_prefix,
        cassandra_host=settings.cassandra.hosts[0],
        cassandra_port=settings.cassandra.port,
        registry_url=settings.registry.url,
        extra_env={
            "CDC_SINK__TTL_SWEEP_INTERVAL_S": "1",
            "CDC_SINK__BATCH_SIZE": "500",
        },  # a smoother live view
    )
    try:
        create_captured_schema(session, settings, say)
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        worker.start()
        say(f"worker started (pid {worker.proc.pid if worker.proc else '?'}), log {worker.log_path}")
        report: list[generator.GeneratorReport] = []
        writer = threading.Thread(
            target=lambda: report.append(
                generator.run(session, rate=rate, seconds=seconds, seed=int(time.time()))
            ),
            daemon=True,
        )
        writer.start()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            ensure_meta(conn)  # the worker creates them too; the summary may query first on a fresh database
            last, started = _progress(conn, settings)[0], time.monotonic()
            say(f"writing {rate:.0f} writes/s for {seconds:.0f}s  (rows: cassandra/postgres)")
            while writer.is_alive():
                time.sleep(2)
                consumed, lag = _progress(conn, settings)
                say(
                    f"  t={time.monotonic() - started:5.1f}s  applied {(consumed - last) / 2:7.0f} ev/s  lag {lag:6d}  {_counts(session, conn)}"
                )
                last = consumed
        if report:
            say(
                f"generator: {report[0].written} writes ({report[0].failed} failed): {dict(report[0].planned)}"
            )
        say("waiting for the worker to apply everything ...")
        wait_applied(pg_dsn, DEMO_APP_ID, settings.kafka.bootstrap_servers, _topics(settings), timeout=300)
        time.sleep(2)
        diffs = stable_diffs(session, pg_dsn, list(schema.TABLES))
        say("row-by-row comparison, Cassandra vs PostgreSQL:")
        for diff in diffs:
            say("  " + diff.summary())
            for key, cols in list(diff.different.items())[:3]:
                say(f"    differs {key}: {cols}")
        return all(d.equal for d in diffs)
    finally:
        worker.stop()
        cluster.shutdown()

"""Systemic faults while CQL writes stream through the real stack: each pauses the stream (``/health`` 503
naming the cause, checked over HTTP), none dead-letters anything, and the mirror converges once the cause
is gone.

In turn, with writes flowing (inserts plus ``set`` additions, so batches read collections back):

1. PostgreSQL read-only (``ALTER DATABASE ... SET default_transaction_read_only``, sessions reconnected);
2. the mirror's INSERT privilege revoked from the worker's role;
3. PostgreSQL restarted (``cdc stack`` stops and starts the server) mid-stream;
4. Cassandra unreachable while batches read collections back (the worker reaches Cassandra through a
   :class:`app.testing.TcpProxy`, cut and restored).

The worker runs as its own non-superuser role, owner of its own database (a superuser ignores privileges).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app.testing import (
    CqlWriter,
    StartWorker,
    TcpProxy,
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    unique,
    wait_applied,
    wait_until,
    worker_health,
)
from stack import control
from stack.config import Settings as StackSettings

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

TABLE = "items"


class Database:
    """A database of its own, owned by a login role of its own (what the worker connects as)."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.role = unique("it_fault_role")
        self.name = unique("it_faults")
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(self.role)))
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.name), sql.Identifier(self.role)
                )
            )

    def dsn(self, *, as_admin: bool = False) -> str:
        if as_admin:
            return make_conninfo(self.admin_dsn, dbname=self.name)
        return make_conninfo(self.admin_dsn, dbname=self.name, user=self.role)

    def admin(self, statement: sql.Composed, *, in_database: bool = True) -> None:
        """Run ``statement`` as the superuser, in this database (or in the server's default one)."""
        dsn = self.dsn(as_admin=True) if in_database else self.admin_dsn
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(statement)

    def disconnect_worker(self) -> None:
        """End the worker's sessions (new ones pick up database-level settings)."""
        self.admin(
            sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}").format(
                sql.Literal(self.role)
            ),
            in_database=False,
        )

    def dead_letters(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn(as_admin=True)) as conn:
            return conn.execute("SELECT error_type, error_message FROM _cdc_dlq_records").fetchall()

    def drop(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.role)))


@pytest.fixture
def database(pg_dsn: str) -> Iterator[Database]:
    db = Database(pg_dsn)
    try:
        yield db
    finally:
        db.drop()


def wait_health(
    worker: WorkerProcess, code: int, component: str, status: str, what: str, reason: str = ""
) -> dict[str, Any]:
    """Wait until ``/health`` answers ``code`` with ``component`` in ``status`` and ``reason`` in its detail
    (ending the worker's sessions shows first as a transient AdminShutdown: the cause under test comes
    after)."""
    seen: list[tuple[int, dict[str, Any]]] = []

    def answers() -> bool:
        seen[:] = [worker_health(worker)]
        answer, body = seen[0]
        state = body.get("components", {}).get(component, {})
        return answer == code and state.get("status") == status and reason in state.get("detail", "")

    try:
        wait_until(answers, 120, what)
    except TimeoutError as error:
        pytest.fail(f"{error}; last /health: {seen}\n{worker.log_tail()}")
    return seen[0][1]


def mirror_exists(database: Database, keyspace: str) -> bool:
    with psycopg.connect(database.dsn(as_admin=True)) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{keyspace}"."{TABLE}"',)).fetchone()
    return bool(row and row[0])


def detail(body: dict[str, Any], component: str) -> str:
    return str(body["components"][component]["detail"])


def test_systemic_faults_pause_the_stream_without_dead_letters_and_it_converges(
    cql: Any,
    keyspace: str,
    database: Database,
    start_worker: StartWorker,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
    cassandra_contact: tuple[str, int],
    stack_settings: StackSettings,
) -> None:
    if os.environ.get("CDC_TEST_PG_DSN"):
        pytest.skip("restarts the local stack's PostgreSQL; CDC_TEST_PG_DSN points elsewhere")
    topic = f"{topic_prefix}.{keyspace}.{TABLE}"
    topics.append(topic)
    create_cdc_keyspace(
        cql,
        keyspace,
        {TABLE: CqlWriter.DEFINITION},
        topic_prefix,
        kafka_bootstrap,
        agent_log,
    )
    with TcpProxy(*cassandra_contact) as cassandra:
        worker = start_worker(
            [keyspace],
            pg_dsn=database.dsn(),
            cassandra_port=cassandra.port,
            extra_env={"CDC_SINK__CIRCUIT_PROBE_AFTER_S": "2", "CDC_SINK__BATCH_SIZE": "50"},
        )
        writer = CqlWriter(cql, keyspace, TABLE)
        writer.start()
        try:
            wait_health(worker, 200, "postgres", "up", "the worker did not become healthy")
            mirror = sql.Identifier(keyspace, TABLE)
            # Healthy is not yet "the mirror exists" (it is created with the table's first batch): the
            # privilege step below revokes on it.
            wait_until(lambda: mirror_exists(database, keyspace), 120, "the mirror was never created")

            # 1. read-only (a failover to a standby looks the same to the worker)
            database.admin(
                sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(database.name)
                ),
                in_database=False,
            )
            database.disconnect_worker()
            body = wait_health(
                worker,
                503,
                "postgres",
                "down",
                "read-only PostgreSQL was not reported",
                "ReadOnlySqlTransaction",
            )
            assert detail(body, "postgres").startswith("transient: "), body
            database.admin(
                sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(
                    sql.Identifier(database.name)
                ),
                in_database=False,
            )
            database.disconnect_worker()
            wait_health(worker, 200, "postgres", "up", "the worker did not resume after read-only ended")

            # 2. a revoked privilege: systemic, paused, never dead-lettered
            database.admin(
                sql.SQL("REVOKE INSERT ON {} FROM {}").format(mirror, sql.Identifier(database.role))
            )
            body = wait_health(
                worker,
                503,
                "postgres",
                "down",
                "the revoked privilege was not reported",
                "InsufficientPrivilege",
            )
            assert detail(body, "postgres").startswith("systemic: "), body
            database.admin(sql.SQL("GRANT INSERT ON {} TO {}").format(mirror, sql.Identifier(database.role)))
            wait_health(worker, 200, "postgres", "up", "the worker did not resume after the GRANT")

            # 3. PostgreSQL restarted while batches run
            control.down(["postgres"], stack_settings, lambda line: None)
            wait_health(worker, 503, "postgres", "down", "the PostgreSQL restart was not reported")
            control.up(["postgres"], stack_settings, lambda line: None)
            wait_health(worker, 200, "postgres", "up", "the worker did not resume after the restart")

            # 4. Cassandra unreachable while batches read collections back
            cassandra.cut()
            body = wait_health(worker, 503, "cassandra", "down", "unreachable Cassandra was not reported")
            assert "transient" in detail(body, "cassandra"), body
            cassandra.restore()
            wait_health(worker, 200, "cassandra", "up", "the worker did not resume after Cassandra came back")
        finally:
            writer.stopped.set()
            writer.join(10)
        assert writer.count > 100, "too few writes to have streamed through every fault"

        diffs: list[Any] = []

        def converged() -> bool:
            wait_applied(database.dsn(as_admin=True), worker.app_id, kafka_bootstrap, [topic], timeout=120)
            diffs[:] = compare_keyspace(cql, database.dsn(as_admin=True), keyspace, [TABLE])
            return all(d.equal for d in diffs)

        try:
            wait_until(converged, 180, "the mirror did not converge")
        except TimeoutError:
            pytest.fail(f"{[d.summary() for d in diffs]}\n{worker.log_tail()}")
        assert database.dead_letters() == []

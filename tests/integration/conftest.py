"""Fixtures shared by the real-stack tests: a Cassandra session, the test's keyspace, worker processes."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Cluster

from app.testing import StartWorker, WorkerProcess, delete_topics, drop_pg_schema, free_port, unique
from stack.config import Settings as StackSettings
from tests.stack_fixtures import marker_services


@pytest.fixture(scope="session")
def cql(cassandra_contact: tuple[str, int]) -> Iterator[Any]:
    """A cassandra-driver session on the stack's Cassandra (no keyspace bound)."""
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    host, port = cassandra_contact
    cluster = Cluster([host], port=port, protocol_version=5, connect_timeout=10)
    session = cluster.connect()
    session.default_timeout = 30
    try:
        yield session
    finally:
        cluster.shutdown()


@pytest.fixture
def keyspace(request: pytest.FixtureRequest, cql: Any) -> Iterator[str]:
    """A fresh keyspace name, ``it_<test module>_<random>``. The test creates the keyspace (with CDC tables or
    without); afterwards it is dropped, with its PostgreSQL schema when the test uses postgres."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = unique(f"it_{module}")
    pg_dsn: str | None = None
    if "postgres" in marker_services(request.node):
        pg_dsn = request.getfixturevalue("pg_dsn")
    yield name
    cql.execute(f"DROP KEYSPACE IF EXISTS {name}")
    if pg_dsn is not None:
        drop_pg_schema(pg_dsn, name)


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[list[str]]:
    """Kafka topics the test creates or makes the agent create: append their names; deleted afterwards."""
    names: list[str] = []
    yield names
    if names:
        delete_topics(kafka_bootstrap, names)


@pytest.fixture
def start_worker(
    tmp_path: Path,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    cassandra_contact: tuple[str, int],
    topics: list[str],
) -> Iterator[StartWorker]:
    """``start_worker(keyspaces, workdir=None, **WorkerProcess fields)`` starts a ``cdc worker`` process (own group, state
    and web port) with every endpoint from the stack fixtures (PostgreSQL, Kafka, topic prefix, Cassandra; no
    schema registry unless ``registry_url=`` is given); every worker started is stopped after the test, before
    the test's ``topics`` are deleted (a running worker would recreate them)."""
    started: list[WorkerProcess] = []
    host, port = cassandra_contact
    endpoints: dict[str, Any] = {
        "pg_dsn": pg_dsn,
        "kafka_bootstrap": kafka_bootstrap,
        "topic_prefix": topic_prefix,
        "cassandra_host": host,
        "cassandra_port": port,
    }

    def start(keyspaces: list[str], workdir: Path | None = None, **fields: Any) -> WorkerProcess:
        worker = WorkerProcess(keyspaces, workdir or tmp_path, free_port(), **{**endpoints, **fields})
        started.append(worker)
        worker.start()
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def tls_stack(stack_settings: StackSettings) -> Iterator[StackSettings]:
    """PostgreSQL, Kafka, Cassandra, the Debezium agent and OpenBao in the stack's TLS mode (TLS-only
    listeners, passwords everywhere), on ports and in a directory of their own, once per session. The directory is
    world-traversable: PostgreSQL runs as the ``postgres`` user and pytest's tmp dirs are 0700."""
    from stack import control

    folder = Path(tempfile.mkdtemp(prefix="cdc-tls-stack-"))
    folder.chmod(0o755)
    settings = dataclasses.replace(
        stack_settings,
        dir=folder,
        cache_dir=stack_settings.cache,
        pg_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        cassandra_port=free_port(),
        cassandra_storage_port=free_port(),
        cassandra_heap="512M",
        debezium_http_port=free_port(),
        debezium_heap="512m",
        openbao_port=free_port(),
        tls=True,
    )
    services = ["postgres", "kafka", "cassandra", "debezium", "openbao"]
    try:
        control.up(services, settings, lambda line: None)
        yield settings
    finally:
        control.down(services, settings, lambda line: None)
        shutil.rmtree(folder, ignore_errors=True)

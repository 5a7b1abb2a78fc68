"""Cassandra in the stack's TLS mode (the ``tls_stack`` node: TLS-only clients, PasswordAuthenticator,
CassandraAuthorizer): the worker's connection (``app.cassandra_session.connect``) with verification and the
least-privilege role reads schema and rows, may not write, and is refused without TLS or with an unknown CA.

The whole pipeline in TLS mode is in ``test_vault.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import Unauthorized
from cassandra.cluster import Cluster, NoHostAvailable

from app.cassandra_schema import table_schema
from app.cassandra_session import connect
from app.settings import CassandraSettings
from app.testing import unique
from stack.config import Settings as StackSettings

pytestmark = [pytest.mark.integration, pytest.mark.services("cassandra")]


def worker_settings(s: StackSettings, **tls: Any) -> CassandraSettings:
    return CassandraSettings(
        hosts=[s.host],
        port=s.cassandra_port,
        username=s.cassandra_reader,
        password=s.cassandra_reader_password,
        tls=tls,
    )


def test_the_worker_reads_cassandra_over_verified_tls_with_a_select_only_role(
    tls_stack: StackSettings,
) -> None:
    s = tls_stack
    keyspace = unique("it_tls")
    admin = Cluster([s.host], port=s.cassandra_port, **s.cassandra_client_kwargs())
    try:
        session = admin.connect()
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(f"CREATE TABLE {keyspace}.items (id int PRIMARY KEY, v int, tags set<text>)")
        session.execute(f"INSERT INTO {keyspace}.items (id, v, tags) VALUES (1, 10, {{'a', 'b'}})")

        ca = s.tls_dir / "ca.pem"
        cluster, reader = connect(worker_settings(s, enabled=True, ca_file=ca))
        try:
            schema = table_schema(cluster, keyspace, "items")  # metadata, as the registry reads it
            assert [c.name for c in schema.columns] == ["tags", "v"]  # the key's columns apart
            assert reader.execute(f"SELECT v, tags FROM {keyspace}.items WHERE id = 1").one() == (
                10,
                {"a", "b"},
            )
            with pytest.raises(Unauthorized):
                reader.execute(f"INSERT INTO {keyspace}.items (id, v) VALUES (2, 20)")
        finally:
            cluster.shutdown()

        for refused in (
            worker_settings(s),  # plaintext
            worker_settings(s, enabled=True),  # the system's CAs do not know the stack's
        ):
            with pytest.raises(NoHostAvailable):
                connect(refused)[0].shutdown()
        session.execute(f"DROP KEYSPACE {keyspace}")
    finally:
        admin.shutdown()

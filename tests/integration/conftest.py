"""Fixtures shared by the real-stack tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cassandra.cluster import Cluster


@pytest.fixture(scope="session")
def cql(cassandra_contact: tuple[str, int]) -> Iterator[Any]:
    """A cassandra-driver session on the stack's Cassandra (no keyspace bound)."""
    host, port = cassandra_contact
    cluster = Cluster([host], port=port, protocol_version=5)
    session = cluster.connect()
    session.default_timeout = 30
    yield session
    cluster.shutdown()

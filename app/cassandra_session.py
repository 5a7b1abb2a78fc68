"""Connecting to Cassandra with cassandra-driver from the settings."""

from __future__ import annotations

from typing import Any

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import DCAwareRoundRobinPolicy

from app import tls
from app.settings import CassandraSettings


def connect(settings: CassandraSettings, keyspace: str | None = None) -> tuple[Any, Any]:
    """Return ``(cluster, session)``; the caller shuts the cluster down."""
    auth = None
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        auth = PlainTextAuthProvider(username=settings.username, password=password)
    cluster = Cluster(
        contact_points=settings.hosts,
        port=settings.port,
        auth_provider=auth,
        # Execution profiles (not the driver's legacy session settings): callers derive their own from the
        # default, e.g. the read-back's tuple rows.
        execution_profiles={
            EXEC_PROFILE_DEFAULT: ExecutionProfile(
                load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=settings.local_dc)
            )
        },
        protocol_version=5,
        connect_timeout=10,
        # The driver checks each node's certificate against its address when the context checks host names.
        ssl_context=tls.context(settings.tls) if settings.tls.enabled else None,
    )
    return cluster, cluster.connect(keyspace)

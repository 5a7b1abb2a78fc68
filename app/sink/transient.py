"""Which failures are transient (retry the batch with backoff) rather than bugs or bad data."""

from __future__ import annotations

import psycopg
import psycopg_pool


def is_transient(error: BaseException) -> bool:
    """Connection loss, timeouts and unavailability of PostgreSQL or Cassandra."""
    from cassandra import OperationTimedOut, ReadTimeout, Unavailable
    from cassandra.cluster import NoHostAvailable

    transient: tuple[type[BaseException], ...] = (
        psycopg.OperationalError,
        psycopg.errors.SerializationFailure,
        psycopg.errors.DeadlockDetected,
        psycopg.errors.AdminShutdown,
        psycopg.errors.CannotConnectNow,
        psycopg_pool.PoolTimeout,
        NoHostAvailable,
        OperationTimedOut,
        ReadTimeout,
        Unavailable,
        ConnectionError,
        TimeoutError,
    )
    return isinstance(error, transient)

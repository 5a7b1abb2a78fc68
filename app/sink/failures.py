"""What a failure means for the stream: one classification for every error the sink meets.

- **transient**: the dependency is briefly unavailable (connection lost, serialization failure or deadlock,
  admin/crash shutdown, read-only after a failover, too many connections, lock timeout, Cassandra timeouts
  and unavailability, the schema registry down). Retried with backoff while consumption waits.
- **systemic**: the environment refuses every record alike (privilege, authentication, disk full, a missing
  database/schema/table/column, data corruption, Cassandra ``Unauthorized``). Also retried with backoff
  while consumption waits, reported on ``/health``; never dead-lettered. The stream resumes once the cause
  is fixed.
- **record**: caused by one record's data (a value PostgreSQL refuses, a key over the btree limit, a query
  cancelled by ``statement_timeout``, a key Cassandra refuses). The batch is bisected and that record alone
  is dead-lettered under a typed reason (:func:`dead_letter_error`).
- **unknown**: anything else, i.e. a bug. Bisected like a record failure and dead-lettered as
  ``internal_error``, under the dead-letter-rate breaker (:mod:`app.sink.breaker`), so a bug that hits
  every record pauses the stream instead of draining it.

Pure: classification looks only at the exception's type and PostgreSQL's SQLSTATE.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from enum import Enum

import psycopg
import psycopg_pool

from models.errors import InternalError, KeyTooLarge, PermanentEventError, ValueRejected


class Kind(Enum):
    TRANSIENT = "transient"
    SYSTEMIC = "systemic"
    RECORD = "record"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Failure:
    kind: Kind
    component: str
    """The dependency it belongs to: postgres, cassandra, registry, or sink (the worker itself)."""

    @property
    def pauses(self) -> bool:
        """Is it retried with the stream waiting (never dead-lettered)?"""
        return self.kind in (Kind.TRANSIENT, Kind.SYSTEMIC)


class SystemicFault(Exception):
    """Raised by the sink itself for a fault that is not one record's: e.g. the dead-letter-rate breaker."""

    component = "sink"


# SQLSTATEs (exact or class prefix) -> kind; the longest matching prefix wins.
_SQLSTATES: dict[str, Kind] = {
    "08": Kind.TRANSIENT,  # connection exception
    "40001": Kind.TRANSIENT,  # serialization_failure
    "40P01": Kind.TRANSIENT,  # deadlock_detected
    "57P01": Kind.TRANSIENT,  # admin_shutdown (a restart)
    "57P02": Kind.TRANSIENT,  # crash_shutdown
    "57P03": Kind.TRANSIENT,  # cannot_connect_now (starting up)
    "57P05": Kind.TRANSIENT,  # idle_session_timeout
    "25006": Kind.TRANSIENT,  # read_only_sql_transaction (a standby after failover, or read-only set)
    "53300": Kind.TRANSIENT,  # too_many_connections
    "55P03": Kind.TRANSIENT,  # lock_not_available (lock_timeout)
    "53": Kind.SYSTEMIC,  # insufficient resources: disk full, out of memory
    "28": Kind.SYSTEMIC,  # invalid authorization
    "42501": Kind.SYSTEMIC,  # insufficient_privilege
    "3D000": Kind.SYSTEMIC,  # invalid_catalog_name (database gone)
    "3F000": Kind.SYSTEMIC,  # invalid_schema_name
    "42P01": Kind.SYSTEMIC,  # undefined_table (a mirror dropped under the worker)
    "42703": Kind.SYSTEMIC,  # undefined_column
    "58": Kind.SYSTEMIC,  # system error (I/O)
    "XX": Kind.SYSTEMIC,  # internal error, data corrupted
    "F0": Kind.SYSTEMIC,  # configuration file error
    "22": Kind.RECORD,  # data exception
    "23": Kind.RECORD,  # integrity constraint violation
    "54": Kind.RECORD,  # program limit exceeded (index row size, too many columns)
    "57014": Kind.RECORD,  # query_canceled (statement_timeout)
}


def _sqlstate_kind(sqlstate: str) -> Kind | None:
    for length in (5, 2):
        kind = _SQLSTATES.get(sqlstate[:length])
        if kind is not None:
            return kind
    return None


def _postgres_kind(error: psycopg.Error) -> Kind:
    sqlstate = error.sqlstate
    if sqlstate is None:
        # No server answer: the connection broke (OperationalError) or the client misused it.
        return Kind.TRANSIENT if isinstance(error, psycopg.OperationalError) else Kind.UNKNOWN
    return _sqlstate_kind(sqlstate) or Kind.UNKNOWN


def _cassandra_kind(error: BaseException) -> Kind:
    import cassandra
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException

    if isinstance(error, cassandra.Unauthorized | cassandra.AuthenticationFailed):
        return Kind.SYSTEMIC
    if isinstance(error, cassandra.InvalidRequest):
        return Kind.RECORD
    transient = (
        NoHostAvailable,
        cassandra.OperationTimedOut,
        cassandra.Timeout,  # read and write timeouts
        cassandra.Unavailable,
        cassandra.CoordinationFailure,  # read and write failures
        ConnectionException,
    )
    return Kind.TRANSIENT if isinstance(error, transient) else Kind.UNKNOWN


def _component(error: BaseException) -> str:
    named = getattr(error, "component", None)  # our own errors say which dependency they are about
    if isinstance(named, str):
        return named
    module = type(error).__module__
    if module.startswith("cassandra"):
        return "cassandra"
    if module.startswith(("psycopg", "psycopg_pool")):
        return "postgres"
    return "sink"


def classify(error: BaseException) -> Failure:
    """The kind of ``error`` and the dependency it belongs to."""
    component = _component(error)
    if isinstance(error, psycopg.Error):
        kind = _postgres_kind(error)
    elif isinstance(error, psycopg_pool.PoolTimeout):
        kind = Kind.TRANSIENT
    elif isinstance(error, SystemicFault):
        kind = Kind.SYSTEMIC
    elif isinstance(error, ConnectionError | TimeoutError):
        kind = Kind.TRANSIENT  # incl. RegistryUnavailable, SchemaUnavailable
    elif component == "cassandra":
        kind = _cassandra_kind(error)
    else:
        kind = Kind.UNKNOWN
    return Failure(kind, component)


def pauses(error: BaseException) -> bool:
    """Retry with backoff while the stream waits (transient or systemic)?"""
    return classify(error).pauses


def is_transient(error: BaseException) -> bool:
    return classify(error).kind is Kind.TRANSIENT


def describe(error: BaseException) -> str:
    """``Type: message`` on one line (no traceback; psycopg's messages carry no connection secrets)."""
    return "".join(traceback.format_exception_only(error)).strip().replace("\n", " ")


def dead_letter_error(error: BaseException) -> PermanentEventError:
    """The typed dead-letter error for a record that fails alone with ``error`` (record or unknown kind)."""
    if isinstance(error, PermanentEventError):
        return error
    text = describe(error)
    sqlstate = error.sqlstate if isinstance(error, psycopg.Error) else None
    if sqlstate == "54000" and "index row" in str(error):
        return KeyTooLarge(text)
    if classify(error).component == "cassandra" and "key length" in str(error).lower():
        return KeyTooLarge(text)
    if classify(error).kind is Kind.RECORD:
        return ValueRejected(text)
    return InternalError(text)

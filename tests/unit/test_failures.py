"""app.sink.failures over real exception instances: psycopg's SQLSTATE classes, cassandra-driver's errors,
our own dependency errors; and the typed dead-letter reason of a record that fails alone."""

from __future__ import annotations

import cassandra
import psycopg
import psycopg_pool
import pytest
from cassandra.cluster import NoHostAvailable
from psycopg import errors as pg

from app.cassandra_schema import SchemaUnavailable
from app.sink.breaker import DeadLetterFlood
from app.sink.decoding import RegistryUnavailable
from app.sink.failures import Failure, Kind, classify, dead_letter_error, describe

TRANSIENT = [
    (psycopg.OperationalError("server closed the connection unexpectedly"), "postgres"),
    (pg.ConnectionFailure("connection failure"), "postgres"),
    (pg.SerializationFailure("could not serialize access"), "postgres"),
    (pg.DeadlockDetected("deadlock detected"), "postgres"),
    (pg.AdminShutdown("terminating connection due to administrator command"), "postgres"),
    (pg.CannotConnectNow("the database system is starting up"), "postgres"),
    (pg.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"), "postgres"),
    (pg.TooManyConnections("too many clients already"), "postgres"),
    (pg.LockNotAvailable("canceling statement due to lock timeout"), "postgres"),
    (psycopg_pool.PoolTimeout("couldn't get a connection after 30 sec"), "postgres"),
    (NoHostAvailable("Unable to connect to any servers", {}), "cassandra"),
    (cassandra.OperationTimedOut("timed out"), "cassandra"),
    (cassandra.ReadTimeout("Operation timed out - received only 0 responses."), "cassandra"),
    (cassandra.Unavailable("Cannot achieve consistency level LOCAL_QUORUM"), "cassandra"),
    (cassandra.ReadFailure("Operation failed"), "cassandra"),
    (SchemaUnavailable("refreshing the schema of ks.t failed"), "cassandra"),
    (RegistryUnavailable("registry answered 503"), "registry"),
]

SYSTEMIC = [
    (pg.InsufficientPrivilege("permission denied for table items"), "postgres"),
    (pg.InvalidPassword("password authentication failed"), "postgres"),
    (pg.DiskFull("could not extend file: No space left on device"), "postgres"),
    (pg.OutOfMemory("out of memory"), "postgres"),
    (pg.UndefinedTable('relation "ks.items" does not exist'), "postgres"),
    (pg.InvalidCatalogName('database "cdc" does not exist'), "postgres"),
    (pg.DataCorrupted("invalid page in block"), "postgres"),
    (cassandra.Unauthorized("User cdc has no SELECT permission"), "cassandra"),
    (cassandra.AuthenticationFailed("Provided username and/or password are incorrect"), "cassandra"),
    (DeadLetterFlood("40 of the last 40 events would be dead-lettered"), "sink"),
]

RECORD = [
    (pg.ProgramLimitExceeded("index row size 4016 exceeds btree version 4 maximum 2704"), "postgres"),
    (pg.NumericValueOutOfRange("value out of range"), "postgres"),
    (pg.UntranslatableCharacter("unsupported Unicode escape sequence"), "postgres"),
    (pg.UniqueViolation("duplicate key value"), "postgres"),
    (pg.QueryCanceled("canceling statement due to statement timeout"), "postgres"),
    (cassandra.InvalidRequest("Key length of 70000 is longer than maximum of 65535"), "cassandra"),
]


@pytest.mark.parametrize(("error", "component"), TRANSIENT, ids=lambda v: type(v).__name__)
def test_transient_failures_pause_and_retry(error: BaseException, component: str) -> None:
    assert classify(error) == Failure(Kind.TRANSIENT, component)
    assert classify(error).pauses


@pytest.mark.parametrize(("error", "component"), SYSTEMIC, ids=lambda v: type(v).__name__)
def test_systemic_failures_pause_and_are_never_dead_lettered(error: BaseException, component: str) -> None:
    assert classify(error) == Failure(Kind.SYSTEMIC, component)
    assert classify(error).pauses


@pytest.mark.parametrize(("error", "component"), RECORD, ids=lambda v: type(v).__name__)
def test_record_failures_are_bisected_not_paused(error: BaseException, component: str) -> None:
    assert classify(error) == Failure(Kind.RECORD, component)
    assert not classify(error).pauses


def test_anything_else_is_unknown_and_belongs_to_the_worker() -> None:
    for error in (KeyError("bug"), ValueError("bug"), psycopg.ProgrammingError("misuse")):
        assert classify(error).kind is Kind.UNKNOWN
    assert classify(KeyError("bug")).component == "sink"


def test_the_typed_reason_of_a_record_that_fails_alone() -> None:
    big = pg.ProgramLimitExceeded(
        'index row size 4016 exceeds btree version 4 maximum 2704 for index "t_pkey"'
    )
    assert dead_letter_error(big).reason == "key_too_large"
    too_long = cassandra.InvalidRequest("Key length of 70000 is longer than maximum of 65535")
    assert dead_letter_error(too_long).reason == "key_too_large"
    assert dead_letter_error(pg.NumericValueOutOfRange("value out of range")).reason == "value_rejected"
    assert dead_letter_error(pg.ProgramLimitExceeded("too many columns")).reason == "value_rejected"
    bug = dead_letter_error(KeyError("bug writing (1,)"))
    assert (bug.reason, str(bug)) == ("internal_error", "KeyError: 'bug writing (1,)'")


def test_describe_is_one_line() -> None:
    assert describe(ValueError("a\nb")) == "ValueError: a b"

"""Repair, the pure parts: the mutations that bring a mirror row to Cassandra's (cells by write time with
their TTL, tombstones for null cells at the observed time, collections read back, a marker for a key-only
row), the adjuster that drops contradicting cells at the same write time, and the job options' JSON form."""

from __future__ import annotations

import pytest

from app.reconcile.engine import Strategy
from app.reconcile.jobs import JobOptions, checked_tables
from app.reconcile.repair import adjuster, mutations_of, row_query
from models.convergence import Cell, RowState
from models.cql_types import parse_cql_type
from models.mutations import CellWrite, Key, RowWrite
from models.table_schema import Column, TableSchema

SCHEMA = TableSchema(
    "ks",
    "t",
    (Column("id", parse_cql_type("int")),),
    (Column("c", parse_cql_type("int")),),
    columns=(
        Column("name", parse_cql_type("text")),
        Column("v", parse_cql_type("bigint")),
        Column("tags", parse_cql_type("set<text>")),
    ),
)
OBSERVED, NOW = 9_000, 10_000_000


def test_the_row_query_reads_write_times_and_ttls_and_protects_names() -> None:
    query = row_query(SCHEMA)
    assert query == (
        "SELECT name, v, WRITETIME(name), WRITETIME(v), TTL(name), TTL(v), tags, MAXWRITETIME(tags) "
        "FROM ks.t WHERE id = ? AND c = ?"
    )
    odd = TableSchema("ks", "T", (Column("Key", parse_cql_type("int")),))
    assert row_query(odd) == 'SELECT "Key" FROM ks."T" WHERE "Key" = ?'


def test_cells_are_grouped_by_write_time_with_their_ttl_and_nulls_get_tombstones_at_the_observed_time() -> (
    None
):
    record = ("alice", None, 100, None, 60, None, {"a"}, 150)
    found = mutations_of(SCHEMA, (1, 2), record, OBSERVED, NOW)
    assert found == [
        RowWrite((1, 2), 100, {"name": CellWrite("alice", NOW + 60_000_000)}),
        RowWrite((1, 2), OBSERVED, {"v": CellWrite(None)}),
        RowWrite((1, 2), 150, {"tags": CellWrite(["a"])}, hint_columns=frozenset({"tags"})),
    ]


def test_a_row_of_its_key_alone_gets_a_marker() -> None:
    record = (None, None, None, None, None, None, None, None)
    found = mutations_of(SCHEMA, (1, 2), record, OBSERVED, NOW)
    assert found[-1] == RowWrite((1, 2), OBSERVED, {}, marker=True)


def test_the_adjuster_drops_only_cells_contradicting_cassandra_at_the_same_time() -> None:
    mutations = [RowWrite((1, 2), 100, {"name": CellWrite("alice")})]
    rows: dict[Key, RowState] = {
        (1, 2): RowState({"name": Cell(100, "zzz"), "v": Cell(100, 5)}),
        (1, 3): RowState({"name": Cell(100, "zzz")}),
    }
    adjusted = adjuster(mutations)(rows, {})
    assert dict(adjusted[(1, 2)].cells) == {"v": Cell(100, 5)}
    assert adjusted[(1, 3)] is rows[(1, 3)]
    newer: dict[Key, RowState] = {(1, 2): RowState({"name": Cell(200, "newer")})}
    assert adjuster(mutations)(newer, {})[(1, 2)] is newer[(1, 2)]  # newer data is never dropped
    same: dict[Key, RowState] = {(1, 2): RowState({"name": Cell(100, "alice")})}
    assert adjuster(mutations)(same, {})[(1, 2)] is same[(1, 2)]


def test_job_options_round_trip_and_table_names_are_checked() -> None:
    options = JobOptions(Strategy.ROW_COUNT, ranges=16, repair=True, job_type="scheduled")
    assert JobOptions.from_dict(options.as_dict()) == options
    assert JobOptions.from_dict({"strategy": "CHECKSUM", "unknown": 1}).strategy is Strategy.CHECKSUM
    assert checked_tables(["ks.t"]) == ["ks.t"]
    with pytest.raises(ValueError, match="nodot"):
        checked_tables(["nodot"])

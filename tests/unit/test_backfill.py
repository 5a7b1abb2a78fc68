"""Backfill, the pure parts and the apply wiring on fakes: a scanned row as mutations (cells by write time with
their TTL, nulls skipped, the marker's approximation, collections as read-back hints), the collection reads
served from the scan only for rows the mirror holds nothing of, the merge with what the stream applied, the
rate pacer and the options."""

from __future__ import annotations

import time

import pytest

from app.backfill.apply import ScannedCollections
from app.backfill.runner import BackfillOptions, Pacer, checked_tables
from app.reconcile.repair import row_query
from app.settings import load_settings
from app.sink.applier import Applier
from app.sink.registry import TableEntry
from app.testing import cql_table
from models.backfill import RowLayout, scan_query, scanned_row
from models.convergence import Cell, Marker, PartitionTombstones, ReadBack, RowState
from models.mutations import CellWrite, PartitionDelete, RowDelete, RowWrite
from tests.unit.fakes import MemoryLedger, MemoryPool, MemoryReader, MemoryRegistry, MemoryStore

T = cql_table(
    "ks", "t", {"id": "int"}, {"c": "int"}, columns={"name": "text", "v": "bigint", "tags": "set<text>"}
)
LAYOUT = RowLayout.of(T)
READ, NOW = 5_000_000, 10_000_000
TOKEN = -42


def record(
    name: str | None = None,
    v: int | None = None,
    name_ts: int | None = None,
    v_ts: int | None = None,
    name_ttl: int | None = None,
    v_ttl: int | None = None,
    tags: set[str] | None = None,
    tags_ts: int | None = None,
) -> tuple[object, ...]:
    """A row as the scan returns it: key, simple values, write times, TTLs, collections, newest times, token."""
    return (1, 2, name, v, name_ts, v_ts, name_ttl, v_ttl, tags, tags_ts, TOKEN)


def test_the_scan_reads_every_cell_with_its_write_time_and_ttl_by_token_range_and_protects_names() -> None:
    assert scan_query(T, "ks.t") == (
        "SELECT id, c, name, v, WRITETIME(name), WRITETIME(v), TTL(name), TTL(v), tags, MAXWRITETIME(tags), "
        "token(id) FROM ks.t WHERE token(id) > ? AND token(id) <= ?"
    )
    odd = cql_table("ks", "T", {"Key": "int"}, columns={"select": "int"})
    assert scan_query(odd, 'ks."T"') == (
        'SELECT "Key", "select", WRITETIME("select"), TTL("select"), token("Key") FROM ks."T" '
        'WHERE token("Key") > ? AND token("Key") <= ?'
    )
    assert row_query(T).startswith("SELECT " + ", ".join(LAYOUT.selection()) + " FROM")


def test_cells_are_grouped_by_write_time_with_their_expiry_and_the_marker_is_on_the_oldest() -> None:
    row = scanned_row(LAYOUT, record("alice", 7, 100, 300, 60, None), READ, NOW)
    assert (row.key, row.token, row.collections) == ((1, 2), TOKEN, {})
    assert row.mutations == [
        RowWrite((1, 2), 100, {"name": CellWrite("alice", NOW + 60_000_000)}, marker=True),
        RowWrite((1, 2), 300, {"v": CellWrite(7)}),
    ]


def test_the_marker_expires_with_the_cells_only_when_every_cell_expires() -> None:
    row = scanned_row(LAYOUT, record("alice", 7, 100, 100, 60, 90), READ, NOW)
    assert row.mutations == [
        RowWrite(
            (1, 2),
            100,
            {"name": CellWrite("alice", NOW + 60_000_000), "v": CellWrite(7, NOW + 90_000_000)},
            marker=True,
            marker_expires_at=NOW + 90_000_000,
        )
    ]


def test_null_cells_add_nothing_and_a_row_of_nulls_lives_by_a_marker_at_the_read_time() -> None:
    only_v = scanned_row(LAYOUT, record(v=7, v_ts=300), READ, NOW)
    assert only_v.mutations == [RowWrite((1, 2), 300, {"v": CellWrite(7)}, marker=True)]
    marker_only = scanned_row(LAYOUT, record(), READ, NOW)
    assert marker_only.mutations == [RowWrite((1, 2), READ, {}, marker=True)]


def test_a_collection_is_a_read_back_hint_at_its_newest_element_and_is_kept_for_the_read_back() -> None:
    row = scanned_row(LAYOUT, record(tags={"x", "a"}, tags_ts=250), READ, NOW)
    assert row.collections == {"tags": ReadBack(["a", "x"], 250)}
    assert row.mutations == [
        RowWrite((1, 2), 250, {}, marker=True),
        RowWrite((1, 2), 250, {"tags": CellWrite(["a", "x"])}, hint_columns=frozenset({"tags"})),
    ]


class World:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.reader = MemoryReader()
        self.ledger = MemoryLedger()
        registry = MemoryRegistry({("ks", "t"): TableEntry(T, self.store)})
        self.pool = MemoryPool([self.store, self.ledger])
        self.applier = Applier(self.pool, registry, self.reader, group_id="g", ledger=self.ledger)

    def backfill(self, *records: tuple[object, ...]) -> ScannedCollections:
        rows = [scanned_row(LAYOUT, r, READ, NOW) for r in records]
        reads = ScannedCollections(T, rows, self.reader)
        with self.pool.connection() as conn:
            mutations = [m for r in rows for m in r.mutations]
            self.applier.apply_rows(conn, ("ks", "t"), mutations, reads.adjust, reads)
        return reads


def test_a_fresh_rows_collection_comes_from_the_scan_without_reading_cassandra() -> None:
    w = World()
    reads = w.backfill(record("alice", None, 100, tags={"a"}, tags_ts=120))
    assert w.reader.calls == []
    assert reads.read_again == 0
    state = w.store.rows[(1, 2)]
    assert state.cells["tags"] == Cell(120, ["a"])
    assert state.cells["name"] == Cell(100, "alice")
    assert state.marker == Marker(100)


def test_a_row_the_mirror_holds_has_its_collection_read_back_now_not_taken_from_the_older_scan() -> None:
    w = World()
    w.store.rows[(1, 2)] = RowState({"tags": Cell(400, ["new"])})  # the stream read it back after the scan
    w.reader.values[(1, 2)] = {"tags": ReadBack(["new"], 400)}
    reads = w.backfill(record(tags={"old"}, tags_ts=120))
    assert w.reader.calls == [[(1, 2)]]
    assert reads.read_again == 1
    assert w.store.rows[(1, 2)].cells["tags"] == Cell(400, ["new"])


def test_a_partition_tombstone_makes_the_rows_of_its_partition_known() -> None:
    w = World()
    w.store.tombstones[(1,)] = PartitionTombstones(partition_ts=50)
    w.reader.values[(1, 2)] = {"tags": ReadBack(["a"], 120)}
    reads = w.backfill(record(tags={"a"}, tags_ts=120))
    assert (w.reader.calls, reads.read_again) == ([[(1, 2)]], 1)


def test_a_backfilled_cell_older_than_the_streams_changes_nothing_and_a_newer_one_wins() -> None:
    w = World()
    w.store.rows[(1, 2)] = RowState({"name": Cell(500, "stream"), "v": Cell(100, 1)}, Marker(100))
    w.backfill(record("old", 9, 300, 400))
    state = w.store.rows[(1, 2)]
    assert (state.cells["name"], state.cells["v"]) == (Cell(500, "stream"), Cell(400, 9))


def test_a_tombstone_the_stream_applied_shadows_older_backfilled_cells_and_the_marker() -> None:
    w = World()
    with w.pool.connection() as conn:
        w.applier.apply_rows(conn, ("ks", "t"), [RowDelete((1, 2), 350)])
        w.applier.apply_rows(conn, ("ks", "t"), [PartitionDelete((1,), 200)])
    w.backfill(record("a", 7, 300, 400), (1, 3, "b", None, 150, None, None, None, None, None, TOKEN))
    visible = {k: r for k, r in w.store.rows.items() if r.is_visible(NOW)}
    assert set(visible) == {(1, 2)}
    assert visible[(1, 2)].cells == {"v": Cell(400, 7)}
    assert visible[(1, 2)].marker is None


def test_the_pacer_holds_a_job_to_its_rate_across_calls() -> None:
    pacer = Pacer(2000.0)
    started = time.monotonic()
    for _ in range(5):
        pacer.take(100)
    assert time.monotonic() - started >= 0.2  # 500 rows at 2,000/s: the last call waits for 0.2 s
    unpaced = Pacer(None)
    started = time.monotonic()
    unpaced.take(10**9)
    assert time.monotonic() - started < 0.05


def test_options_come_from_settings_with_per_job_overrides_and_round_trip_as_json() -> None:
    settings = load_settings(backfill={"parallel": 3, "page_size": 500})
    options = BackfillOptions.from_settings(settings, rate=100.0, ranges=None)
    assert (options.parallel, options.page_size, options.rate, options.ranges) == (3, 500, 100.0, 256)
    assert BackfillOptions.from_dict({**options.as_dict(), "unknown": 1}) == options


def test_tables_must_be_keyspace_qualified_and_at_least_one() -> None:
    assert checked_tables(["a.b", "a.b", "c.d"]) == ["a.b", "c.d"]
    with pytest.raises(ValueError, match="at least one"):
        checked_tables([])
    with pytest.raises(ValueError, match="'nodot'"):
        checked_tables(["a.b", "nodot"])

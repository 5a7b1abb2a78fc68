"""app.sink.applier against real PostgreSQL (psycopg_pool, PostgresLedger, MirrorStore): fencing between two
workers, a revoke while a batch runs, offsets (skips below the stored offset, gaps beyond it), internal errors
through a bisecting commit, the TTL sweep and the purge after the grace period. No Cassandra: the registry is
a one-table resolver and the table has no non-frozen collection (nothing is read back)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import Connection, sql
from psycopg_pool import ConnectionPool

from app.clock import now_us
from app.sink.applier import Applier
from app.sink.checkpoints import Fenced, ensure_meta
from app.sink.registry import TableEntry
from app.sink.store import MirrorStore
from app.testing import cql_table, debezium_cell, debezium_source, unique, wait_until
from models.batch import Record
from models.convergence import ReadBack
from models.merge_plan import Plan
from models.mirror_spec import spec_for
from models.mutations import Key
from models.table_schema import TableSchema

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres")]

Checkpoint = tuple[int, int, int]
"""``(next_offset, generation, events)`` of the test's partition in ``_cdc_checkpoints``."""


class OneTable:
    """The table registry: every event names the test's table."""

    def __init__(self, entry: TableEntry) -> None:
        self.entry = entry

    def resolve(self, keyspace: str, table: str) -> TableEntry:
        return self.entry

    def refresh(self, keyspace: str, table: str, types: bool = False) -> TableEntry:
        return self.entry

    def current(self, keyspace: str, table: str) -> TableEntry:
        return self.entry

    def quarantined(self) -> dict[tuple[str, str], str]:
        return {}


class NoReadBack:
    def read(
        self, schema: TableSchema, keys: Sequence[Key], columns: Sequence[str] | None = None
    ) -> dict[Key, dict[str, ReadBack]]:
        raise AssertionError(f"unexpected read-back of {keys}")


class HookedStore(MirrorStore):
    """The real store; ``before_write`` runs inside the batch's transaction, between load and write (what the
    agent's revoke callback or another worker does while a batch runs in its thread); writing a row whose key
    is ``poison`` raises a bug-like error after the real write (rolled back with the transaction)."""

    before_write: Callable[[], None] | None = None
    poison: Key | None = None

    def write(self, conn: Connection[Any], plan: Plan, now_us: int) -> None:
        if self.before_write is not None:
            self.before_write()
        super().write(conn, plan, now_us)
        if self.poison is not None and self.poison in plan.rows:
            raise RuntimeError(f"bug writing {self.poison}")


class Stage:
    """One mirror table, one consumer group and one partition of a unique topic on the stack's PostgreSQL."""

    def __init__(self, pg_dsn: str) -> None:
        self.pg_dsn = pg_dsn
        self.keyspace = unique("it_applier_pg")
        self.group = unique("it_applier_pg")
        self.topic = f"cdc.{self.keyspace}.t"
        self.tp = (self.topic, 0)
        self.schema = cql_table(self.keyspace, "t", {"id": "int"}, {"c": "int"}, {"name": "text"})
        self.spec = spec_for(self.schema)
        self.store = HookedStore(self.spec)
        self.pools: list[ConnectionPool[Any]] = []
        self.ts = now_us()

    # -- workers --------------------------------------------------------------------------------------------
    def applier(self) -> Applier:
        """A worker: its own pool, the real ledger, the test's table."""
        pool: ConnectionPool[Any] = ConnectionPool(self.pg_dsn, min_size=1, max_size=2, open=True)
        self.pools.append(pool)
        return Applier(pool, OneTable(TableEntry(self.schema, self.store)), NoReadBack(), self.group)

    # -- records --------------------------------------------------------------------------------------------
    def _record(self, offset: int, op: str, key: dict[str, Any], after: dict[str, Any], ts: int) -> Record:
        value = {
            "ts_ms": ts // 1000,
            "op": op,
            "source": debezium_source(self.keyspace, "t", ts),
            "after": {k: debezium_cell(v) for k, v in key.items() if v is not None} | after,
        }
        return Record(self.topic, 0, offset, orjson.dumps(key), orjson.dumps(value))

    def insert(self, offset: int, id_: int, name: str, *, expires_at: int | None = None) -> Record:
        """``INSERT (id, c=1, name)``, written ``offset`` µs after the stage's start (later offsets win)."""
        cell = debezium_cell(name, expires_at)
        return self._record(offset, "i", {"id": id_, "c": 1}, {"name": cell}, self.ts + offset)

    def stale(self, offset: int, id_: int, name: str) -> Record:
        """Like :meth:`insert` but newer than anything else: it wins if it is applied at all."""
        return self._record(offset, "i", {"id": id_, "c": 1}, {"name": debezium_cell(name)}, self.ts + 10**9)

    def delete_row(self, offset: int, id_: int) -> Record:
        return self._record(offset, "d", {"id": id_, "c": 1}, {}, self.ts + offset)

    def delete_partition(self, offset: int, id_: int) -> Record:
        return self._record(offset, "d", {"id": id_, "c": None}, {}, self.ts + offset)

    def malformed(self, offset: int) -> Record:
        return Record(self.topic, 0, offset, b"{}", b"not json")

    # -- reading PostgreSQL ---------------------------------------------------------------------------------
    def query(self, query: sql.Composed | str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def mirror(self) -> dict[int, str]:
        table = sql.Identifier(self.spec.schema, self.spec.name)
        return dict(self.query(sql.SQL("SELECT id, name FROM {}").format(table)))

    def dead_rows(self) -> list[tuple[Any, ...]]:
        table = sql.Identifier(self.spec.schema, self.spec.dead_name)
        return self.query(sql.SQL("SELECT id, c FROM {} ORDER BY id, c").format(table))

    def tombstones(self) -> list[tuple[Any, ...]]:
        table = sql.Identifier(self.spec.schema, self.spec.tombstones_name)
        return self.query(sql.SQL("SELECT id, _cdc_kind FROM {} ORDER BY id").format(table))

    def checkpoint(self) -> Checkpoint | None:
        rows = self.query(
            "SELECT next_offset, generation, events FROM _cdc_checkpoints WHERE group_id = %s AND topic = %s",
            self.group,
            self.topic,
        )
        return (int(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None

    def dead_letters(self) -> list[tuple[Any, ...]]:
        return self.query(
            'SELECT "offset", error_type FROM _cdc_dlq_records WHERE topic = %s ORDER BY "offset"', self.topic
        )

    # -- set-up and clean-up --------------------------------------------------------------------------------
    def create(self) -> None:
        with psycopg.connect(self.pg_dsn) as conn:
            ensure_meta(conn)
            conn.commit()
            self.store.ensure(conn)
            conn.commit()

    def drop(self) -> None:
        for pool in self.pools:
            pool.close()
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.spec.schema)))
            conn.execute("DELETE FROM _cdc_checkpoints WHERE group_id = %s", (self.group,))
            conn.execute("DELETE FROM _cdc_dlq_records WHERE topic = %s", (self.topic,))


@pytest.fixture
def stage(pg_dsn: str) -> Iterator[Stage]:
    s = Stage(pg_dsn)
    s.create()
    try:
        yield s
    finally:
        s.drop()


# -- fencing ------------------------------------------------------------------------------------------------
def test_a_fenced_worker_commits_nothing_and_does_not_take_the_partition_back(stage: Stage) -> None:
    a, b = stage.applier(), stage.applier()
    a.claim([stage.tp])
    a.apply([stage.insert(0, 1, "a"), stage.insert(1, 2, "b")])
    after_a = stage.checkpoint()
    assert after_a is not None
    assert (after_a[0], after_a[2]) == (2, 2)

    assert b.claim([stage.tp])[stage.tp].next_offset == 2  # a rebalance gives the partition to B
    claimed_by_b = stage.checkpoint()
    assert claimed_by_b is not None
    assert claimed_by_b[1] > after_a[1]
    batch = [stage.insert(2, 3, "c"), stage.malformed(3)]
    with pytest.raises(Fenced):
        a.apply(batch)
    assert stage.mirror() == {1: "a", 2: "b"}
    assert stage.dead_letters() == []
    assert stage.checkpoint() == claimed_by_b

    again = a.apply(batch)  # A's next buffered batch: still not A's partition
    assert again.not_owned == {stage.tp: 2}
    assert (again.next_offsets, again.dead_letters, again.skipped) == ({}, [], 0)
    assert stage.mirror() == {1: "a", 2: "b"}
    assert stage.dead_letters() == []
    assert stage.checkpoint() == claimed_by_b  # same generation: A did not claim it back

    b.apply(batch)
    assert stage.mirror() == {1: "a", 2: "b", 3: "c"}
    assert stage.dead_letters() == [(3, "malformed_event")]
    assert stage.checkpoint() == (4, claimed_by_b[1], 4)


def test_a_revoke_while_a_batch_runs_lets_it_commit_as_the_still_current_owner(stage: Stage) -> None:
    a = stage.applier()
    a.claim([stage.tp])
    stage.store.before_write = lambda: a.release([stage.tp])  # the revoke callback, mid-transaction
    outcome = a.apply([stage.insert(0, 1, "a")])
    stage.store.before_write = None
    assert outcome.next_offsets == {stage.tp: 1}
    assert stage.mirror() == {1: "a"}
    committed = stage.checkpoint()
    assert committed is not None
    assert (committed[0], committed[2]) == (1, 1)
    assert a.claims == {}  # the commit did not bring the released claim back

    later = a.apply([stage.insert(1, 2, "b")])
    assert later.not_owned == {stage.tp: 1}
    assert stage.mirror() == {1: "a"}
    assert stage.checkpoint() == committed


def test_a_revoke_and_a_claim_by_another_worker_while_a_batch_runs_fence_it(stage: Stage) -> None:
    a, b = stage.applier(), stage.applier()
    a.claim([stage.tp])

    def taken_over() -> None:
        a.release([stage.tp])
        b.claim([stage.tp])  # committed on B's own connection while A's transaction is open

    stage.store.before_write = taken_over
    with pytest.raises(Fenced):
        a.apply([stage.insert(0, 1, "a"), stage.malformed(1)])
    stage.store.before_write = None
    assert stage.mirror() == {}
    assert stage.dead_letters() == []
    taken = stage.checkpoint()
    assert taken is not None
    assert (taken[0], taken[1], taken[2]) == (-1, b.claims[stage.tp].generation, 0)

    b.apply([stage.insert(0, 1, "a"), stage.malformed(1)])
    assert stage.mirror() == {1: "a"}
    assert stage.checkpoint() == (2, taken[1], 2)


# -- offsets ------------------------------------------------------------------------------------------------
def test_records_below_the_stored_offset_are_skipped_uncounted_and_a_gap_applies_nothing(
    stage: Stage,
) -> None:
    a = stage.applier()
    a.claim([stage.tp])
    a.apply([stage.insert(0, 1, "a"), stage.insert(1, 2, "b"), stage.insert(2, 3, "c")])
    first = stage.checkpoint()
    assert first is not None
    assert (first[0], first[2]) == (3, 3)

    redelivered = [stage.stale(1, 2, "OLD"), stage.stale(2, 3, "OLD")]
    outcome = a.apply([*redelivered, stage.insert(3, 4, "d"), stage.insert(4, 5, "e")])
    assert outcome.skipped == 2
    assert outcome.consumed == {stage.tp: 2}
    assert stage.mirror() == {1: "a", 2: "b", 3: "c", 4: "d", 5: "e"}
    assert stage.checkpoint() == (5, first[1], 5)

    beyond = a.apply([stage.insert(7, 8, "h"), stage.insert(8, 9, "i")])  # offsets 5 and 6 never seen
    assert beyond.gaps == {stage.tp: 5}
    assert (beyond.next_offsets, beyond.consumed) == ({}, {})
    assert stage.mirror() == {1: "a", 2: "b", 3: "c", 4: "d", 5: "e"}
    assert stage.checkpoint() == (5, first[1], 5)


# -- unexpected errors --------------------------------------------------------------------------------------
def test_an_unexpected_error_dead_letters_exactly_the_failing_record(stage: Stage) -> None:
    a = stage.applier()
    a.claim([stage.tp])
    claimed = stage.checkpoint()
    assert claimed is not None
    stage.store.poison = (2, 1)
    batch = [stage.insert(0, 1, "a"), stage.insert(1, 2, "boom"), stage.insert(2, 3, "c")]
    with pytest.raises(RuntimeError):
        a.apply(batch)
    assert stage.mirror() == {}  # the real write of the whole batch was rolled back
    assert stage.checkpoint() == claimed

    outcome = a.commit(a.prepare(batch), bisect=True)  # what Runtime does next
    assert [(d.record.offset, d.reason) for d in outcome.dead_letters] == [(1, "internal_error")]
    assert stage.dead_letters() == [(1, "internal_error")]
    assert stage.mirror() == {1: "a", 3: "c"}
    assert stage.checkpoint() == (3, claimed[1], 3)


# -- time ---------------------------------------------------------------------------------------------------
def test_one_sweep_after_the_ttl_passes_removes_the_expired_row(stage: Stage) -> None:
    a = stage.applier()
    a.claim([stage.tp])
    expires_at = now_us() + 1_500_000
    a.apply([stage.insert(0, 1, "ttl", expires_at=expires_at), stage.insert(1, 2, "kept")])
    assert stage.mirror() == {1: "ttl", 2: "kept"}
    assert a.sweep([(stage.keyspace, "t")], grace_s=3600) == 0  # not yet due
    assert stage.mirror() == {1: "ttl", 2: "kept"}

    time.sleep(max(0.0, (expires_at - now_us()) / 1e6))
    wait_until(lambda: now_us() > expires_at, 5, "the TTL instant did not pass", interval=0.02)
    assert a.sweep([(stage.keyspace, "t")], grace_s=3600) == 1
    assert stage.mirror() == {2: "kept"}


def test_dead_rows_and_tombstones_are_kept_within_the_grace_period_and_purged_after(stage: Stage) -> None:
    a = stage.applier()
    a.claim([stage.tp])
    a.apply([stage.insert(0, 1, "a"), stage.insert(1, 2, "b"), stage.insert(2, 3, "c")])
    a.apply([stage.delete_row(3, 1), stage.delete_partition(4, 2)])
    assert stage.mirror() == {3: "c"}
    assert stage.dead_rows() == [(1, 1)]
    assert stage.tombstones() == [(2, "partition")]
    tables = [(stage.keyspace, "t")]

    a.sweep(tables, grace_s=3600)
    assert (stage.dead_rows(), stage.tombstones()) == ([(1, 1)], [(2, "partition")])
    a.sweep(tables, grace_s=0)
    assert (stage.dead_rows(), stage.tombstones()) == ([], [])
    assert stage.mirror() == {3: "c"}


# -- partition locks ----------------------------------------------------------------------------------------
def test_partition_locks_serialise_two_workers_on_one_cassandra_partition(stage: Stage) -> None:
    """A's batch (an insert) has loaded its row's state when B's batch (a newer partition delete, from another
    Kafka partition) arrives. B must wait for A's commit and then shadow A's row: without the lock B commits
    in between and A writes the row back from its stale state, visible although it is deleted."""
    a, b = stage.applier(), stage.applier()
    tp_b = (stage.topic, 1)
    a.claim([stage.tp])
    b.claim([tp_b])
    a_loaded, b_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def pause_a_once() -> None:
        if not a_loaded.is_set():
            a_loaded.set()
            b_done.wait(2.0)  # with the lock B cannot finish: give up waiting and commit

    def run(fn: Callable[[], object], done: threading.Event | None = None) -> threading.Thread:
        def body() -> None:
            try:
                fn()
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)
            finally:
                if done is not None:
                    done.set()

        thread = threading.Thread(target=body)
        thread.start()
        return thread

    stage.store.before_write = pause_a_once
    older_insert = stage.insert(0, 1, "older")
    newer_delete = dataclasses.replace(stage.delete_partition(5, 1), partition=1)
    thread_a = run(lambda: a.apply([older_insert]))
    assert a_loaded.wait(10), "A's batch did not reach its write"
    thread_b = run(lambda: b.apply([newer_delete]), b_done)
    thread_a.join(20)
    thread_b.join(20)
    assert errors == []
    assert stage.mirror() == {}, "the older insert must be shadowed by the newer partition delete"
    assert stage.tombstones() == [(1, "partition")]

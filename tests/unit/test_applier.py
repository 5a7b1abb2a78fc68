"""app.sink.applier through its ports, with in-memory fakes (tests.unit.fakes): offsets, skips, gaps,
fencing, dead letters, isolation of a failing record, read-back of collections, the TTL sweep."""

from __future__ import annotations

import orjson
import pytest

from app.sink.applier import Applier
from app.sink.checkpoints import Fenced
from app.sink.registry import TableEntry
from app.testing import cql_table, debezium_cell, debezium_source
from models.batch import Record
from models.convergence import Cell, ReadBack, RowState
from models.partition_locks import lock_order
from tests.unit.fakes import MemoryLedger, MemoryPool, MemoryReader, MemoryRegistry, MemoryStore

TOPIC = "cdc.ks.t"
TS = 1_700_000_000_000_000
T = cql_table("ks", "t", {"id": "int"}, columns={"name": "text", "tags": "set<text>"})


def insert(offset: int, key: int, name: str, *, table: str = "t", partition: int = 0) -> Record:
    after = {"id": debezium_cell(key), "name": debezium_cell(name), "tags": None}
    value = {
        "ts_ms": TS // 1000,
        "op": "i",
        "source": debezium_source("ks", table, TS + offset),
        "after": after,
    }
    return Record(TOPIC, partition, offset, orjson.dumps({"id": key}), orjson.dumps(value))


class World:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.ledger = MemoryLedger()
        self.reader = MemoryReader()
        registry = MemoryRegistry({("ks", "t"): TableEntry(T, self.store)})
        self.pool = MemoryPool([self.store, self.ledger])
        self.applier = Applier(self.pool, registry, self.reader, group_id="g", ledger=self.ledger)

    def claim(self, *partitions: int) -> None:
        """What the agent does on assignment (a batch applies only claimed partitions)."""
        self.applier.claim([(TOPIC, p) for p in partitions or (0,)])

    def names(self) -> dict[tuple[object, ...], object]:
        return {k: r.cells["name"].value for k, r in self.store.rows.items() if "name" in r.cells}


def test_a_batch_applies_rows_and_moves_the_offset_with_exact_counts() -> None:
    w = World()
    w.claim()
    outcome = w.applier.apply([insert(0, 1, "a"), insert(1, 2, "b")])
    assert w.names() == {(1,): "a", (2,): "b"}
    assert w.ledger.offsets == {(TOPIC, 0): 2}
    assert w.ledger.events == {(TOPIC, 0): 2}
    assert outcome.applied[(("ks", "t"), "RowWrite")] == 2


def test_records_below_the_stored_offset_are_skipped_and_not_counted() -> None:
    w = World()
    w.ledger.offsets[(TOPIC, 0)] = 2
    w.claim()
    outcome = w.applier.apply([insert(1, 1, "old"), insert(2, 2, "new")])
    assert outcome.skipped == 1
    assert w.names() == {(2,): "new"}
    assert w.ledger.events == {(TOPIC, 0): 1}


def test_a_batch_starting_beyond_the_stored_offset_reports_the_gap_and_applies_nothing() -> None:
    w = World()
    w.ledger.offsets[(TOPIC, 0)] = 2
    w.claim()
    outcome = w.applier.apply([insert(5, 1, "a")])
    assert outcome.gaps == {(TOPIC, 0): 2}
    assert w.store.rows == {}
    assert w.ledger.offsets == {(TOPIC, 0): 2}


def test_a_fenced_batch_leaves_no_rows_dead_letters_or_offsets() -> None:
    w = World()
    w.claim()
    w.ledger.claim(None, "g", [(TOPIC, 0)])  # another worker takes the partition
    with pytest.raises(Fenced):
        w.applier.apply([insert(0, 1, "a"), Record(TOPIC, 0, 1, b"{}", b"not json")])
    assert w.store.rows == {}
    assert w.ledger.dead_letters == []
    assert w.ledger.offsets == {}


def test_a_fenced_worker_does_not_take_the_partition_back_on_its_next_batch() -> None:
    w = World()
    w.claim()
    w.ledger.claim(None, "g", [(TOPIC, 0)])  # another worker takes the partition (generation 2)
    with pytest.raises(Fenced):
        w.applier.apply([insert(0, 1, "a")])
    outcome = w.applier.apply([insert(0, 1, "a"), insert(1, 2, "b")])
    assert outcome.not_owned == {(TOPIC, 0): 2}
    assert (outcome.next_offsets, outcome.consumed, outcome.skipped) == ({}, {}, 0)
    assert w.ledger.generations == {(TOPIC, 0): 2}  # no silent re-claim
    assert (w.store.rows, w.ledger.offsets) == ({}, {})


def test_records_of_unclaimed_partitions_are_left_alone_and_the_rest_applies() -> None:
    w = World()
    w.claim(0)
    outcome = w.applier.apply([insert(0, 1, "a"), insert(0, 2, "b", partition=1), insert(1, 3, "c")])
    assert outcome.not_owned == {(TOPIC, 1): 1}
    assert w.names() == {(1,): "a", (3,): "c"}
    assert w.ledger.offsets == {(TOPIC, 0): 2}
    assert w.ledger.events == {(TOPIC, 0): 2}
    assert (TOPIC, 1) not in w.ledger.generations


def test_fencing_drops_only_the_claims_another_worker_replaced() -> None:
    w = World()
    w.claim(0, 1)
    w.ledger.claim(None, "g", [(TOPIC, 0)])
    with pytest.raises(Fenced) as fenced:
        w.applier.apply([insert(0, 1, "a"), insert(0, 2, "b", partition=1)])
    assert fenced.value.partitions == {(TOPIC, 0)}
    assert set(w.applier.claims) == {(TOPIC, 1)}
    outcome = w.applier.apply([insert(0, 1, "a"), insert(0, 2, "b", partition=1)])
    assert outcome.not_owned == {(TOPIC, 0): 1}
    assert w.names() == {(2,): "b"}
    assert w.ledger.offsets == {(TOPIC, 1): 1}


def test_a_release_during_a_batch_neither_breaks_it_nor_brings_the_claim_back() -> None:
    w = World()
    w.claim()
    w.store.on_write = lambda: w.applier.release([(TOPIC, 0)])  # revoked while the batch runs
    outcome = w.applier.apply([insert(0, 1, "a")])
    assert outcome.next_offsets == {(TOPIC, 0): 1}
    assert w.ledger.offsets == {(TOPIC, 0): 1}  # still the owner in the ledger: the batch commits
    assert w.applier.claims == {}
    w.store.on_write = None
    assert w.applier.apply([insert(1, 2, "b")]).not_owned == {(TOPIC, 0): 1}
    w.applier.expect((TOPIC, 0), 5)  # an assignment callback racing the revoke: ignored
    assert w.applier.claims == {}


def test_a_release_and_a_claim_elsewhere_during_a_batch_fence_it() -> None:
    w = World()
    w.claim()

    def taken_over() -> None:
        w.applier.release([(TOPIC, 0)])
        w.ledger.claim(None, "g", [(TOPIC, 0)])

    w.store.on_write = taken_over
    with pytest.raises(Fenced):
        w.applier.apply([insert(0, 1, "a")])
    assert (w.store.rows, w.ledger.offsets) == ({}, {})


def test_isolated_apply_leaves_unclaimed_partitions_alone_too() -> None:
    w = World()
    w.claim(0)
    w.store.fail_on = (2,)
    records = [insert(0, 1, "a"), insert(1, 2, "boom"), insert(0, 9, "x", partition=1)]
    outcome = w.applier.apply_isolated(records)
    assert outcome.not_owned == {(TOPIC, 1): 1}
    assert [(d.record.offset, d.reason) for d in outcome.dead_letters] == [(1, "internal_error")]
    assert w.ledger.offsets == {(TOPIC, 0): 2}


def test_bad_records_are_dead_lettered_with_their_reason_and_the_rest_applies() -> None:
    w = World()
    w.claim()
    records = [insert(0, 1, "a"), Record(TOPIC, 0, 1, b"{}", b"not json"), insert(2, 2, "b", table="gone")]
    outcome = w.applier.apply(records)
    assert [(d.record.offset, d.reason) for d in w.ledger.dead_letters] == [
        (1, "malformed_event"),
        (2, "unknown_table"),
    ]
    assert w.names() == {(1,): "a"}
    assert outcome.next_offsets == {(TOPIC, 0): 3}


def test_an_unexpected_error_dead_letters_exactly_the_failing_record() -> None:
    w = World()
    w.claim()
    w.store.fail_on = (2,)
    records = [insert(0, 1, "a"), insert(1, 2, "boom"), insert(2, 3, "c")]
    with pytest.raises(KeyError):
        w.applier.apply(records)
    outcome = w.applier.apply_isolated(records)
    assert [(d.record.offset, d.reason) for d in outcome.dead_letters] == [(1, "internal_error")]
    assert w.names() == {(1,): "a", (3,): "c"}
    assert w.ledger.offsets == {(TOPIC, 0): 3}
    assert w.ledger.events == {(TOPIC, 0): 3}


def row_delete(offset: int, key: int, ts: int) -> Record:
    value = {
        "ts_ms": ts // 1000,
        "op": "d",
        "source": debezium_source("ks", "t", ts),
        "after": {"id": debezium_cell(key)},
    }
    return Record(TOPIC, 0, offset, orjson.dumps({"id": key}), orjson.dumps(value))


def test_a_written_collection_is_read_back_and_applied_authoritatively() -> None:
    w = World()
    w.reader.values[(1,)] = {"tags": ReadBack(["x", "y"], TS)}
    w.claim()
    record = insert(0, 1, "b")
    event = orjson.loads(record.value or b"")
    event["after"]["tags"] = debezium_cell(["x"])  # the event's value is only a hint
    w.applier.apply([Record(TOPIC, 0, 0, record.key, orjson.dumps(event))])
    assert w.reader.calls == [[(1,)]]
    assert w.store.rows[(1,)].cells["tags"].value == ["x", "y"]


def test_a_write_of_other_columns_does_not_read_the_collection_back() -> None:
    w = World()
    w.store.rows[(1,)] = RowState(cells={"name": Cell(TS - 5, "a"), "tags": Cell(TS - 5, ["old"])})
    w.claim()
    w.applier.apply([insert(0, 1, "b")])
    assert w.reader.calls == []
    assert w.store.rows[(1,)].cells["tags"].value == ["old"]  # untouched in Cassandra too


def test_a_tombstone_reads_back_only_a_collection_newer_than_itself() -> None:
    w = World()
    w.reader.values[(1,)] = {"tags": ReadBack(["newer"], TS + 10)}
    w.store.rows[(1,)] = RowState(cells={"tags": Cell(TS + 10, ["older", "newer"])})
    w.store.rows[(2,)] = RowState(cells={"name": Cell(TS - 5, "a"), "tags": Cell(TS - 5, ["old"])})
    w.claim()
    w.applier.apply([row_delete(0, 1, TS), row_delete(1, 2, TS)])
    assert w.reader.calls == [[(1,)]]  # row 2's collection is older than the delete: shadowed whole
    assert w.store.rows[(1,)].cells["tags"].value == ["newer"]
    assert "tags" not in w.store.rows[(2,)].cells


def test_the_sweep_rewrites_expired_rows() -> None:
    w = World()
    w.store.rows[(1,)] = RowState(cells={"name": Cell(1, "a", expires_at=10)})
    assert w.applier.sweep([("ks", "t"), ("ks", "gone")], grace_s=0) == 1


def test_a_batch_locks_the_cassandra_partitions_it_touches() -> None:
    w = World()
    w.applier.claim([(TOPIC, 0)])
    w.applier.apply([insert(0, 2, "a"), insert(1, 1, "b"), insert(2, 2, "c")])
    assert w.ledger.locked == [lock_order("ks", "t", [(1,), (2,)])]


def test_an_offset_seen_twice_in_one_batch_is_counted_once() -> None:
    w = World()
    w.applier.claim([(TOPIC, 0)])
    outcome = w.applier.apply([insert(0, 1, "a"), insert(1, 2, "b"), insert(0, 1, "a"), insert(1, 2, "b")])
    assert w.ledger.events == {(TOPIC, 0): 2}
    assert w.ledger.offsets == {(TOPIC, 0): 2}
    assert outcome.skipped == 2


def test_a_batch_prepared_while_the_previous_one_commits_continues_after_it() -> None:
    """The pipeline: batch 2 is prepared before batch 1 commits. Its records follow batch 1's, so they are
    neither a gap nor skipped; a batch prepared without knowing batch 1 would see a gap."""
    w = World()
    w.claim()
    w.applier.expect((TOPIC, 0), 0)  # where the partition starts (its earliest offset)
    first = w.applier.prepare([insert(0, 1, "a"), insert(1, 2, "b")])
    second = w.applier.prepare([insert(2, 3, "c")], after=first)
    unchained = w.applier.prepare([insert(2, 3, "c")])
    assert unchained.outcome.gaps == {(TOPIC, 0): 0}
    assert not second.outcome.gaps
    assert second.outcome.consumed[(TOPIC, 0)] == 1
    w.applier.commit(first)
    w.applier.commit(second)
    assert w.names() == {(1,): "a", (2,): "b", (3,): "c"}
    assert w.ledger.offsets == {(TOPIC, 0): 3}
    assert w.ledger.events == {(TOPIC, 0): 3}


def test_a_record_of_the_batch_still_committing_is_not_applied_twice() -> None:
    w = World()
    w.claim()
    first = w.applier.prepare([insert(0, 1, "a"), insert(1, 2, "b")])
    second = w.applier.prepare([insert(1, 2, "b"), insert(2, 3, "c")], after=first)  # offset 1 again
    w.applier.commit(first)
    outcome = w.applier.commit(second)
    assert outcome.skipped == 1
    assert w.ledger.events == {(TOPIC, 0): 3}


def test_a_previous_batch_of_an_older_claim_does_not_move_the_offsets() -> None:
    w = World()
    w.claim()
    w.applier.expect((TOPIC, 0), 0)
    first = w.applier.prepare([insert(0, 1, "a")])
    w.claim()  # re-claimed (new generation) before the next batch: the first one's offsets do not carry over
    w.applier.expect((TOPIC, 0), 0)
    second = w.applier.prepare([insert(1, 2, "b")], after=first)
    assert second.outcome.gaps == {(TOPIC, 0): 0}


def test_a_failed_commit_can_be_retried_with_the_same_prepared_batch() -> None:
    w = World()
    w.claim()
    prepared = w.applier.prepare([insert(0, 1, "a"), insert(1, 2, "b")])
    failures = [ConnectionError("connection lost")]

    def fail_once() -> None:
        if failures:
            raise failures.pop()

    w.store.on_write = fail_once
    with pytest.raises(ConnectionError):
        w.applier.commit(prepared)
    assert w.ledger.offsets == {}  # rolled back
    outcome = w.applier.commit(prepared)
    assert outcome.applied[(("ks", "t"), "RowWrite")] == 2
    assert w.ledger.events == {(TOPIC, 0): 2}

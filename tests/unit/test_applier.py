"""app.sink.applier through its ports, with in-memory fakes (tests.unit.fakes): offsets, skips, gaps,
fencing, dead letters, isolation of a failing record, read-back of collections, the TTL sweep."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from psycopg import errors as pg_errors

from app.cassandra_schema import SchemaUnavailable
from app.clock import now_us
from app.sink.applier import Applier
from app.sink.breaker import DeadLetterBreaker, DeadLetterFlood
from app.sink.checkpoints import Fenced
from app.sink.failures import classify
from app.sink.registry import TableEntry, TableQuarantined
from app.testing import cql_table, debezium_cell, debezium_source
from models.batch import Record
from models.convergence import Cell, ReadBack, RowState
from models.debezium import Envelope, parse_json
from models.partition_locks import lock_order
from tests.unit.fakes import (
    MemoryConnection,
    MemoryLedger,
    MemoryPool,
    MemoryReader,
    MemoryRegistry,
    MemoryStore,
)

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
        registry = self.registry = MemoryRegistry({("ks", "t"): TableEntry(T, self.store)})
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


def test_a_hole_inside_a_batch_applies_only_what_precedes_it_and_reports_the_gap() -> None:
    """Records of one partition from two fetches with a hole between them (seen with two workers: records
    dropped while the partition was inactive): applying both would store the highest offset and skip the
    hole for good."""
    w = World()
    w.ledger.offsets[(TOPIC, 0)] = 2
    w.claim()
    outcome = w.applier.apply([insert(2, 1, "a"), insert(3, 2, "b"), insert(7, 3, "c"), insert(8, 4, "d")])
    assert w.names() == {(1,): "a", (2,): "b"}
    assert w.ledger.offsets == {(TOPIC, 0): 4}
    assert w.ledger.events == {(TOPIC, 0): 2}
    assert (outcome.gaps, outcome.gap_starts) == ({(TOPIC, 0): 4}, {(TOPIC, 0): 7})


def test_a_late_start_never_moves_a_committed_offset_back() -> None:
    """Seen with two workers: a batch applied under a claim without a checkpoint, then the assignment hook
    set the partition's start (its earliest offset): the offset went back, and the records after it looked
    like a gap over and over."""
    w = World()
    w.claim()
    w.applier.apply([insert(0, 1, "a"), insert(1, 2, "b")])
    w.applier.expect((TOPIC, 0), 0)
    outcome = w.applier.apply([insert(2, 3, "c")])
    assert not outcome.gaps
    assert w.ledger.offsets == {(TOPIC, 0): 3}


def test_a_claim_given_its_start_checks_the_first_batch_against_it() -> None:
    w = World()
    w.applier.claim([(TOPIC, 0)], starts={(TOPIC, 0): 3})
    outcome = w.applier.apply([insert(5, 1, "a")])
    assert outcome.gaps == {(TOPIC, 0): 3}
    assert w.store.rows == {}


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


def test_a_bisecting_commit_leaves_unclaimed_partitions_alone_too() -> None:
    w = World()
    w.claim(0)
    w.store.fail_on = (2,)
    records = [insert(0, 1, "a"), insert(1, 2, "boom"), insert(0, 9, "x", partition=1)]
    outcome = w.applier.commit(w.applier.prepare(records), bisect=True)
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


def test_a_snapshot_event_is_dead_lettered_as_such_not_applied_at_its_query_time() -> None:
    """The agent's snapshot sets ``source.ts_us`` to its query's time: applying it would overwrite a newer
    write of any cell older than the snapshot (``cdc backfill`` reads each cell's write time instead)."""
    w = World()
    w.claim()
    snap = orjson.loads(insert(1, 2, "snap").value or b"")
    snap["source"]["snapshot"] = "true"
    records = [insert(0, 1, "a"), Record(TOPIC, 0, 1, orjson.dumps({"id": 2}), orjson.dumps(snap))]
    w.applier.apply(records)
    assert [(d.record.offset, d.reason) for d in w.ledger.dead_letters] == [(1, "snapshot_event")]
    assert "cdc backfill" in w.ledger.dead_letters[0].message
    assert w.names() == {(1,): "a"}


def test_an_unexpected_error_dead_letters_exactly_the_failing_record() -> None:
    w = World()
    w.claim()
    w.store.fail_on = (2,)
    records = [insert(0, 1, "a"), insert(1, 2, "boom"), insert(2, 3, "c")]
    with pytest.raises(KeyError):
        w.applier.apply(records)
    outcome = w.applier.commit(w.applier.prepare(records), bisect=True)
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


# -- failures: bisection, typed reasons, the breaker, trust checks ---------------------------------------------
def world(**options: object) -> World:
    w = World()
    registry = w.applier.registry
    w.applier = Applier(w.pool, registry, w.reader, group_id="g", ledger=w.ledger, **options)  # type: ignore[arg-type]
    w.claim()
    return w


def test_a_key_postgres_cannot_index_is_bisected_out_as_key_too_large_and_the_rest_applies() -> None:
    w = world()
    w.store.fail_on = (5,)
    w.store.failure = lambda key: pg_errors.ProgramLimitExceeded(
        f'index row size 4016 exceeds btree version 4 maximum 2704 for index "t_pkey" ({key})'
    )
    records = [insert(i, i + 1, f"n{i}") for i in range(8)]
    with pytest.raises(pg_errors.ProgramLimitExceeded):
        w.applier.apply(records)  # the whole batch fails first: nothing is kept
    assert (w.store.rows, w.ledger.offsets) == ({}, {})
    outcome = w.applier.commit(w.applier.prepare(records), bisect=True)
    assert [(d.record.offset, d.reason) for d in w.ledger.dead_letters] == [(4, "key_too_large")]
    assert sorted(w.names()) == [(k,) for k in (1, 2, 3, 4, 6, 7, 8)]
    assert w.ledger.offsets == {(TOPIC, 0): 8}
    assert outcome.applied[(("ks", "t"), "RowWrite")] == 7


def test_a_systemic_error_met_while_bisecting_commits_nothing() -> None:
    w = world()
    w.store.failure = lambda key: pg_errors.InsufficientPrivilege("permission denied for table t")
    with pytest.raises(pg_errors.InsufficientPrivilege):
        w.applier.commit(w.applier.prepare([insert(0, 1, "a"), insert(1, 2, "b")]), bisect=True)
    assert (w.store.rows, w.ledger.offsets, w.ledger.dead_letters) == ({}, {}, [])


def test_a_bug_that_hits_every_record_opens_the_breaker_instead_of_dead_lettering_them() -> None:
    w = world(breaker=DeadLetterBreaker(ratio=0.5, minimum=5))
    w.store.failure = lambda key: KeyError(f"bug writing {key}")
    records = [insert(i, i + 1, "x") for i in range(6)]
    with pytest.raises(DeadLetterFlood, match="6 of the last 6 events"):
        w.applier.commit(w.applier.prepare(records), bisect=True)
    assert (w.store.rows, w.ledger.offsets, w.ledger.dead_letters) == ({}, {}, [])
    w.store.failure = None  # the cause is fixed: the same batch commits
    w.applier.commit(w.applier.prepare(records))
    assert len(w.store.rows) == 6
    assert w.ledger.dead_letters == []


def test_an_unexpected_decoding_error_dead_letters_that_record_as_internal_error() -> None:
    def decode(key: bytes | None, value: bytes | None) -> Envelope | None:
        if value is not None and b'"boom"' in value:
            raise KeyError("decoder bug")
        return parse_json(key, value)

    w = world(decode=decode)
    w.applier.apply([insert(0, 1, "a"), insert(1, 2, "boom"), insert(2, 3, "c")])
    assert [(d.record.offset, d.reason) for d in w.ledger.dead_letters] == [(1, "internal_error")]
    assert w.names() == {(1,): "a", (3,): "c"}


def test_a_decoding_failure_that_pauses_is_raised_not_dead_lettered() -> None:
    def decode(key: bytes | None, value: bytes | None) -> Envelope | None:
        raise SchemaUnavailable("refreshing the schema of ks.t failed")

    w = world(decode=decode)
    with pytest.raises(SchemaUnavailable):
        w.applier.apply([insert(0, 1, "a")])
    assert w.ledger.dead_letters == []


def test_an_event_naming_another_table_than_its_topic_is_dead_lettered_as_topic_mismatch() -> None:
    w = world(topic_prefix="cdc")
    forged = insert(1, 2, "forged", table="other")
    outcome = w.applier.apply([insert(0, 1, "a"), forged])
    assert [(d.record.offset, d.reason) for d in outcome.dead_letters] == [(1, "topic_mismatch")]
    assert "ks.other" in outcome.dead_letters[0].message
    assert w.names() == {(1,): "a"}


def test_a_write_time_far_in_the_future_is_dead_lettered_as_timestamp_out_of_range() -> None:
    w = world(max_clock_skew_s=60)
    future = orjson.loads(insert(1, 2, "future").value or b"")
    future["source"]["ts_us"] = now_us() + 3_600_000_000
    records = [insert(0, 1, "a"), Record(TOPIC, 0, 1, b'{"id": 2}', orjson.dumps(future))]
    outcome = w.applier.apply(records)
    assert [(d.record.offset, d.reason) for d in outcome.dead_letters] == [(1, "timestamp_out_of_range")]
    assert w.names() == {(1,): "a"}


def test_a_replay_of_a_quarantined_tables_records_pauses_and_applies_nothing() -> None:
    """Like the stream: the records wait (the replay job retries with backoff) until the quarantine is lifted."""
    w = World()
    w.registry.held[("ks", "t")] = "the table was dropped and created again"
    conn: Any = MemoryConnection([w.store, w.ledger])  # the Connection the fakes stand for
    with pytest.raises(TableQuarantined) as caught:
        w.applier.replay(conn, [insert(0, 1, "a")])
    assert classify(caught.value).pauses
    assert w.store.rows == {}
    del w.registry.held[("ks", "t")]
    assert w.applier.replay(conn, [insert(0, 1, "a")]) == []
    assert w.names() == {(1,): "a"}

"""agents.changes through its seams (a fake runtime and consumer): claiming, seeking over gaps, the batch
hook's bookkeeping, topic selection and subscription, and no I/O until the worker starts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.types import TP
from prometheus_client import REGISTRY

from agents import changes
from app.health import health
from app.record_buffer import RecordBuffer
from app.sink.applier import Prepared
from app.sink.checkpoints import Claim
from models.batch import DeadLetter, Outcome, Record

TOPIC = "cdc.ks.t"
BATCH = [Record(TOPIC, 0, 0, b"k", b"v")]


@dataclass
class FakeRuntime:
    stored: dict[tuple[str, int], int | None] = field(default_factory=dict)
    expected: dict[tuple[str, int], int] = field(default_factory=dict)
    outcomes: list[Outcome | None] = field(default_factory=list)
    published: int = 0

    async def claim(
        self, partitions: Sequence[tuple[str, int]], starts: Mapping[tuple[str, int], int] | None = None
    ) -> dict[tuple[str, int], Claim]:
        for tp in partitions:
            if self.stored.get(tp) is None and starts is not None and tp in starts:
                self.expected[tp] = starts[tp]
        return {tp: Claim(tp[0], tp[1], self.stored.get(tp), 1) for tp in partitions}

    def expect(self, tp: tuple[str, int], offset: int) -> None:
        self.expected[tp] = offset

    def next_offsets(self) -> dict[tuple[str, int], int]:
        return {tp: o for tp, o in self.stored.items() if o is not None}

    events: list[str] = field(default_factory=list)
    committing: asyncio.Event | None = None
    """When set: commits wait for it (a batch held in PostgreSQL)."""
    fail_prepare: set[int] = field(default_factory=set)

    async def prepare(self, records: Sequence[Record], after: Prepared | None = None) -> Prepared | None:
        first = records[0].offset
        self.events.append(f"prepare {first} after {after.records[0].offset if after else None}")
        if first in self.fail_prepare:
            return None
        return Prepared(records, {}, Outcome(), {}, [], [])

    async def commit(self, records: Sequence[Record], prepared: Prepared | None) -> Outcome | None:
        self.events.append(f"commit {records[0].offset} {'prepared' if prepared else 'isolated'}")
        if self.committing is not None:
            await self.committing.wait()
        self.events.append(f"committed {records[0].offset}")
        return self.outcomes.pop(0) if self.outcomes else Outcome()

    async def publish_dead_letters(self, send: Any) -> int:
        self.published += 1
        return 0


@dataclass
class FakeConsumer:
    earliest: dict[TP, int] = field(default_factory=dict)
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    assigned: set[TP] = field(default_factory=set)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.earliest.get(tp, 0) for tp in partitions}

    async def seek(self, partition: TP, offset: int) -> None:
        self.seeks.append((partition, offset))

    positions: dict[TP, int] = field(default_factory=dict)

    async def position(self, tp: TP) -> int | None:
        if tp not in self.positions and tp in self.assigned:
            raise IllegalStateError(f"{tp} is not assigned")  # as aiokafka does once a rebalance began
        return self.positions.get(tp)

    ends: dict[TP, int] = field(default_factory=dict)
    paused: set[TP] = field(default_factory=set)

    async def highwaters(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in partitions if tp in self.ends}

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        self.paused.update(tps)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        self.paused.difference_update(tps)


def test_importing_the_agent_built_no_runtime() -> None:
    assert changes.wiring.runtime is None


def test_partitions_without_a_checkpoint_start_at_their_earliest_offset() -> None:
    runtime = FakeRuntime(stored={(TOPIC, 0): 7, (TOPIC, 1): None})
    consumer = FakeConsumer(earliest={TP(TOPIC, 1): 3})
    asyncio.run(changes.claim_assigned(runtime, consumer, [(TOPIC, 0), (TOPIC, 1)]))
    assert runtime.expected == {(TOPIC, 1): 3}


def test_gaps_seek_back_to_the_stored_offset_unless_retention_deleted_it() -> None:
    runtime = FakeRuntime()
    consumer = FakeConsumer(earliest={TP(TOPIC, 0): 0, TP(TOPIC, 1): 50})
    asyncio.run(changes.resume_gaps(runtime, consumer, {(TOPIC, 0): 10, (TOPIC, 1): 20}))
    assert consumer.seeks == [(TP(TOPIC, 0), 10)]
    assert runtime.expected == {(TOPIC, 1): 50}  # events 20..49 are gone: accepted loudly


def test_a_batch_is_remembered_and_its_dead_letters_published() -> None:
    outcome = Outcome(next_offsets={(TOPIC, 0): 5}, gaps={(TOPIC, 1): 2})
    outcome.dead_letters.append(DeadLetter(Record(TOPIC, 0, 4, None, b"x"), "malformed_event", "not json"))
    runtime, consumer = FakeRuntime(outcomes=[outcome, None]), FakeConsumer()
    remembered: list[Outcome] = []
    assert asyncio.run(changes.handle_batch(runtime, consumer, BATCH, None, remembered.append)) is outcome
    assert remembered == [outcome]
    assert runtime.published == 1
    assert consumer.seeks == [(TP(TOPIC, 1), 2)]
    assert (
        asyncio.run(changes.handle_batch(runtime, consumer, BATCH, None, remembered.append)) is None
    )  # fenced
    assert remembered == [outcome]


class CommitConsumer(FakeConsumer):
    committed: list[dict[tuple[str, int], int]]

    async def commit_offsets(self, offsets: dict[tuple[str, int], int]) -> bool:
        self.committed.append(dict(offsets))
        return True


def batches_of(*firsts: int) -> Any:
    queue = [[Record(TOPIC, 0, first, b"k", b"v")] for first in firsts]

    async def take() -> list[Record]:
        return queue.pop(0)

    return take


def test_the_next_batch_is_decoded_while_the_previous_one_commits_and_commits_stay_in_order() -> None:
    async def run() -> tuple[list[str], list[dict[tuple[str, int], int]]]:
        held = asyncio.Event()
        runtime = FakeRuntime(committing=held)
        runtime.outcomes = [Outcome(next_offsets={(TOPIC, 0): n}) for n in (10, 20, 30)]
        consumer = CommitConsumer()
        consumer.committed = []
        pipeline = asyncio.ensure_future(changes.run_batches(runtime, consumer, batches_of(0, 10, 20), 3))
        await asyncio.sleep(0.01)
        runtime.events.append("(PostgreSQL done)")
        held.set()
        await pipeline
        return runtime.events, consumer.committed

    events, committed = asyncio.run(run())
    assert events == [
        "prepare 0 after None",
        "prepare 10 after 0",  # while batch 0 is (about to be) in PostgreSQL
        "commit 0 prepared",
        "(PostgreSQL done)",
        "committed 0",
        "prepare 20 after 10",  # while batch 10 is
        "commit 10 prepared",
        "committed 10",
        "commit 20 prepared",
        "committed 20",
    ]
    assert committed == [{(TOPIC, 0): 10}, {(TOPIC, 0): 20}, {(TOPIC, 0): 30}]  # the Kafka hint, per batch


def test_after_a_failed_decode_the_next_batch_waits_for_the_commit_and_is_not_chained() -> None:
    runtime = FakeRuntime(fail_prepare={0})
    consumer = CommitConsumer()
    consumer.committed = []
    asyncio.run(changes.run_batches(runtime, consumer, batches_of(0, 10), 2))
    assert runtime.events == [
        "prepare 0 after None",
        "commit 0 isolated",
        "committed 0",
        "prepare 10 after None",
        "commit 10 prepared",
        "committed 10",
    ]


def test_bookkeeping_failures_never_escape_the_batch_hook() -> None:
    def broken(outcome: Outcome) -> None:
        raise RuntimeError("rocksdb is unhappy")

    outcome = Outcome()
    assert (
        asyncio.run(
            changes.handle_batch(FakeRuntime(outcomes=[outcome]), FakeConsumer(), BATCH, None, broken)
        )
        is outcome
    )


def test_only_change_topics_of_replicated_keyspaces_are_ours() -> None:
    partitions = [TP("cdc.ks.t", 0), TP("other.ks.t", 0), TP("cdc.__cdc_discovery__", 0), TP("cdc.ks2.u", 1)]
    assert changes.ours(partitions) == [("cdc.ks.t", 0), ("cdc.ks2.u", 1)]


def test_subscribe_adds_only_new_topics_and_drops_the_placeholder() -> None:
    before = list(changes.changes.topics)
    try:
        assert changes.subscribe(["cdc.ks.a", "cdc.ks.b"]) == ["cdc.ks.a", "cdc.ks.b"]
        assert list(changes.changes.topics) == ["cdc.ks.a", "cdc.ks.b"]
        assert changes.subscribe(["cdc.ks.b"]) == []
    finally:
        changes.changes.topics = before


def test_unclaimed_records_of_assigned_partitions_are_claimed_and_read_again() -> None:
    outcome = Outcome()
    outcome.not_owned.update({(TOPIC, 0): 3, (TOPIC, 1): 2, (TOPIC, 2): 1})
    runtime = FakeRuntime(stored={(TOPIC, 0): 40, (TOPIC, 1): None}, outcomes=[outcome])
    consumer = FakeConsumer(earliest={TP(TOPIC, 1): 5}, assigned={TP(TOPIC, 0), TP(TOPIC, 1)})
    asyncio.run(changes.handle_batch(runtime, consumer, BATCH, None, lambda _: None))
    assert consumer.seeks == [(TP(TOPIC, 0), 40), (TP(TOPIC, 1), 5)]  # partition 2 is not ours: left alone
    assert runtime.expected == {(TOPIC, 1): 5}


def test_topics_the_conductor_has_not_subscribed_are_flagged_again_outside_rebalances() -> None:
    subscribed = {"cdc.ks.a": object()}
    assert changes.unsubscribed(["cdc.ks.a", "cdc.ks.b"], subscribed, rebalancing=False) == ["cdc.ks.b"]
    assert changes.unsubscribed(["cdc.ks.a", "cdc.ks.b"], subscribed, rebalancing=True) == []
    assert changes.unsubscribed(["cdc.__cdc_discovery__"], {}, rebalancing=False) == []


def test_the_same_gap_right_after_seeking_back_is_a_hole_in_the_log_and_is_passed() -> None:
    """Transaction markers: the stored offset is a marker's, the first record comes after it. The first
    time the worker seeks back (records may have been missed); the same gap again is a hole: accepted."""
    runtime, consumer = FakeRuntime(), FakeConsumer()
    seen: dict[tuple[str, int], tuple[int, int]] = {}
    gap, starts = {(TOPIC, 0): 10}, {(TOPIC, 0): 11}
    asyncio.run(changes.resume_gaps(runtime, consumer, gap, starts, seen))
    assert (consumer.seeks, runtime.expected) == ([(TP(TOPIC, 0), 10)], {})
    asyncio.run(changes.resume_gaps(runtime, consumer, gap, starts, seen))
    assert consumer.seeks[-1] == (TP(TOPIC, 0), 11)
    assert runtime.expected == {(TOPIC, 0): 11}
    assert seen == {}


def test_a_different_gap_after_seeking_back_is_sought_back_again() -> None:
    runtime, consumer = FakeRuntime(), FakeConsumer()
    seen: dict[tuple[str, int], tuple[int, int]] = {}
    asyncio.run(changes.resume_gaps(runtime, consumer, {(TOPIC, 0): 10}, {(TOPIC, 0): 30}, seen))
    asyncio.run(changes.resume_gaps(runtime, consumer, {(TOPIC, 0): 10}, {(TOPIC, 0): 12}, seen))
    assert consumer.seeks == [(TP(TOPIC, 0), 10), (TP(TOPIC, 0), 10)]
    assert runtime.expected == {}


def test_a_stored_offset_beyond_the_topics_end_pauses_the_partition_until_it_is_reset() -> None:
    """A recreated topic: PostgreSQL says 500, the topic ends at 3. Held (paused, health down), not skipped;
    once an operator resets the offset the re-check claims it again, seeks and resumes."""
    held: dict[tuple[str, int], tuple[int, int]] = {}
    runtime = FakeRuntime(stored={(TOPIC, 0): 500, (TOPIC, 1): 2})
    consumer = FakeConsumer(ends={TP(TOPIC, 0): 3, TP(TOPIC, 1): 2}, assigned={TP(TOPIC, 0), TP(TOPIC, 1)})
    claims = asyncio.run(runtime.claim([(TOPIC, 0), (TOPIC, 1)]))
    assert asyncio.run(changes.hold_beyond_end(consumer, claims, held)) == [(TOPIC, 0)]
    assert consumer.paused == {TP(TOPIC, 0)}
    assert health.components["offsets"].status == "down"
    assert "cdc.ks.t[0] stored 500 > end 3" in health.components["offsets"].detail

    asyncio.run(changes.recheck_held(runtime, consumer, held))  # nothing changed: still held
    assert (consumer.paused, consumer.seeks) == ({TP(TOPIC, 0)}, [])

    runtime.stored[(TOPIC, 0)] = 0  # `cdc offsets reset cdc.ks.t --to earliest`
    asyncio.run(changes.recheck_held(runtime, consumer, held))
    assert (held, consumer.paused, consumer.seeks) == ({}, set(), [(TP(TOPIC, 0), 0)])
    assert str(health.components["offsets"].status) == "up"


def test_partitions_of_a_quarantined_table_are_parked_and_resumed_from_postgres_once_it_is_lifted() -> None:
    parked: dict[tuple[str, int], tuple[str, str]] = {}
    runtime = FakeRuntime(stored={(TOPIC, 0): 40})
    consumer = FakeConsumer(assigned={TP(TOPIC, 0), TP(TOPIC, 1)})
    changes.park_quarantined(consumer, [(TOPIC, 0), (TOPIC, 1)], parked)
    assert consumer.paused == {TP(TOPIC, 0), TP(TOPIC, 1)}
    assert parked == {(TOPIC, 0): ("ks", "t"), (TOPIC, 1): ("ks", "t")}

    still = {("ks", "t"): "column v changed type: integer -> text, not lossless"}
    assert asyncio.run(changes.release_quarantined(runtime, consumer, still, parked)) == []
    assert consumer.seeks == []

    consumer.assigned = {TP(TOPIC, 0)}  # partition 1 went to another worker meanwhile
    assert asyncio.run(changes.release_quarantined(runtime, consumer, {}, parked)) == [(TOPIC, 0)]
    assert consumer.seeks == [(TP(TOPIC, 0), 40)]
    assert (parked, consumer.paused) == ({}, {TP(TOPIC, 1)})


def test_a_partition_fetched_past_its_offset_with_nothing_buffered_twice_in_a_row_is_sought_back() -> None:
    """Seen: a table created after start-up, its records fetched (position at the end) but dropped before
    the buffer; with no later write nothing noticed, and the mirror stayed empty."""
    runtime = FakeRuntime(stored={(TOPIC, 0): 0, (TOPIC, 1): 5, (TOPIC, 2): 3})
    consumer = FakeConsumer(
        assigned={TP(TOPIC, 0), TP(TOPIC, 1), TP(TOPIC, 2)},
        positions={TP(TOPIC, 0): 27, TP(TOPIC, 1): 5, TP(TOPIC, 2): 9},
    )
    watched: dict[tuple[str, int], int] = {}
    buffered = {(TOPIC, 2)}  # its records wait for the next batch: fine
    assert asyncio.run(changes.recover_stalled(runtime, consumer, buffered, watched)) == {}
    assert watched == {(TOPIC, 0): 0}  # a batch may be applying it right now: watched, not sought yet
    assert asyncio.run(changes.recover_stalled(runtime, consumer, buffered, watched)) == {(TOPIC, 0): 0}
    assert consumer.seeks == [(TP(TOPIC, 0), 0)]
    assert watched == {}


def test_a_partition_whose_offset_moved_between_checks_is_not_sought_back() -> None:
    runtime = FakeRuntime(stored={(TOPIC, 0): 10})
    consumer = FakeConsumer(assigned={TP(TOPIC, 0), TP(TOPIC, 1)}, positions={TP(TOPIC, 0): 30})
    runtime.stored[(TOPIC, 1)] = 0  # its position cannot be read (a rebalance began): skipped
    watched = {(TOPIC, 0): 4}  # suspect at the last check with another offset: batches are applying it
    assert asyncio.run(changes.recover_stalled(runtime, consumer, set(), watched)) == {}
    assert watched == {(TOPIC, 0): 10}
    assert consumer.seeks == []


def test_a_partition_paused_on_purpose_is_not_sought_back() -> None:
    """Quarantined (parked) partitions keep their records in Kafka; they are sought when resumed."""
    runtime = FakeRuntime(stored={(TOPIC, 0): 0})
    consumer = FakeConsumer(assigned={TP(TOPIC, 0)}, positions={TP(TOPIC, 0): 8})
    changes.wiring.parked[(TOPIC, 0)] = ("ks", "t")
    try:
        watched = {(TOPIC, 0): 0}
        assert asyncio.run(changes.recover_stalled(runtime, consumer, set(), watched)) == {}
        assert consumer.seeks == []
    finally:
        changes.wiring.parked.pop((TOPIC, 0), None)


def test_consumer_lag_is_the_end_offset_minus_where_applying_resumes_and_gone_with_the_partition() -> None:
    from app import metrics

    def gauge(partition: int) -> float | None:
        return REGISTRY.get_sample_value(
            "cdc_consumer_lag_events", {"topic": TOPIC, "partition": str(partition)}
        )

    runtime = FakeRuntime(stored={(TOPIC, 0): 10, (TOPIC, 1): 7, (TOPIC, 2): 4})
    consumer = FakeConsumer(
        assigned={TP(TOPIC, 0), TP(TOPIC, 1)},  # partition 2 went to another worker
        ends={TP(TOPIC, 0): 25, TP(TOPIC, 1): 7, TP(TOPIC, 2): 9},
    )
    reported: set[tuple[str, int]] = set()
    assert asyncio.run(changes.report_lag(runtime, consumer, reported)) == {(TOPIC, 0): 15, (TOPIC, 1): 0}
    assert (gauge(0), gauge(1), gauge(2)) == (15, 0, None)
    consumer.assigned = {TP(TOPIC, 1)}  # a rebalance took partition 0 away
    runtime.stored[(TOPIC, 1)] = 5  # and the ends are read again
    assert asyncio.run(changes.report_lag(runtime, consumer, reported)) == {(TOPIC, 1): 2}
    assert (gauge(0), gauge(1)) == (None, 2)
    assert reported == {(TOPIC, 1)}
    metrics.consumer_lag.remove(TOPIC, "1")


def test_health_shows_kafka_down_while_topic_discovery_cannot_reach_it_and_up_again(monkeypatch: Any) -> None:
    answers: list[Exception | list[str]] = [ConnectionRefusedError("connect call failed"), ["cdc.ks.t"]]

    async def list_topics(*args: Any, **kwargs: Any) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def kafka() -> tuple[str, str]:
        return health.components["kafka"].status, health.components["kafka"].detail

    monkeypatch.setattr(changes, "list_topics", list_topics)
    monkeypatch.setattr(changes, "subscribe", lambda found: None)
    try:
        asyncio.run(changes.discover_topics(resubscribe=False))
        assert kafka()[0] == "down"
        assert "unreachable: ConnectionRefusedError" in kafka()[1]
        asyncio.run(changes.discover_topics(resubscribe=False))
        assert kafka()[0] == "up"
    finally:
        health.components.pop("kafka", None)


def test_on_stop_the_batch_in_postgresql_commits_no_new_batch_is_taken_and_the_loop_reports_drained() -> None:
    async def run() -> tuple[list[str], list[dict[tuple[str, int], int]], bool]:
        held = asyncio.Event()
        runtime = FakeRuntime(committing=held)
        runtime.outcomes = [Outcome(next_offsets={(TOPIC, 0): 10})]
        consumer = CommitConsumer()
        consumer.committed = []
        buffer = RecordBuffer(10)
        await buffer.put([Record(TOPIC, 0, 0, b"k", b"v")])
        stopping, drained = asyncio.Event(), asyncio.Event()
        loop = asyncio.ensure_future(
            changes.run_batches(
                runtime, consumer, lambda: buffer.take(10, 0.001), stopping=stopping, drained=drained
            )
        )
        await asyncio.sleep(0.01)  # batch 0 in PostgreSQL, the loop waits for records
        stopping.set()
        buffer.close()
        await asyncio.sleep(0.01)
        waiting = not drained.is_set()  # the commit is still held
        runtime.events.append("(PostgreSQL done)")
        held.set()
        await asyncio.wait_for(loop, 1)
        return runtime.events, consumer.committed, waiting and drained.is_set()

    events, committed, drained_after_commit = asyncio.run(run())
    assert events == ["prepare 0 after None", "commit 0 prepared", "(PostgreSQL done)", "committed 0"]
    assert committed == [{(TOPIC, 0): 10}]
    assert drained_after_commit


def test_drain_gives_up_after_its_timeout_and_says_so() -> None:
    async def run() -> bool:
        changes.wiring.drained = asyncio.Event()
        return await changes.drain(0.05)

    runtime = FakeRuntime()
    runtime.applier = object()  # type: ignore[attr-defined]
    changes.wiring.runtime = runtime  # type: ignore[assignment]
    try:
        assert asyncio.run(run()) is False
        changes.wiring.drained.set()
        assert asyncio.run(changes.drain(0.05)) is True
    finally:
        changes.wiring.runtime = None
        changes.wiring.stopping = asyncio.Event()
        changes.wiring.drained = asyncio.Event()


def test_an_empty_batch_from_a_rebalance_discard_does_not_end_the_loop() -> None:
    """Seen with two workers: the buffer's records were discarded (partitions revoked) while a batch filled,
    ``take`` answered ``[]``, and a loop that took that for the shutdown stopped applying for good."""
    runtime = FakeRuntime()
    consumer = CommitConsumer()
    consumer.committed = []
    queue: list[list[Record]] = [[], [Record(TOPIC, 0, 0, b"k", b"v")]]

    async def take() -> list[Record]:
        return queue.pop(0)

    asyncio.run(changes.run_batches(runtime, consumer, take, 1))
    assert runtime.events == ["prepare 0 after None", "commit 0 prepared", "committed 0"]

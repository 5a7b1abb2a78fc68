"""agents.changes through its seams (a fake runtime and consumer): claiming, seeking over gaps, the batch
hook's bookkeeping, topic selection and subscription, and no I/O until the worker starts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from agents import changes
from app.sink.checkpoints import Claim
from models.batch import DeadLetter, Outcome, Record

TOPIC = "cdc.ks.t"


@dataclass
class FakeRuntime:
    stored: dict[tuple[str, int], int | None] = field(default_factory=dict)
    expected: dict[tuple[str, int], int] = field(default_factory=dict)
    outcomes: list[Outcome | None] = field(default_factory=list)
    published: int = 0

    async def claim(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Claim]:
        return {tp: Claim(tp[0], tp[1], self.stored.get(tp), 1) for tp in partitions}

    def expect(self, tp: tuple[str, int], offset: int) -> None:
        self.expected[tp] = offset

    async def process(self, records: Sequence[Record]) -> Outcome | None:
        return self.outcomes.pop(0)

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
    assert asyncio.run(changes.handle_batch(runtime, consumer, [], remembered.append)) is outcome
    assert remembered == [outcome]
    assert runtime.published == 1
    assert consumer.seeks == [(TP(TOPIC, 1), 2)]
    assert asyncio.run(changes.handle_batch(runtime, consumer, [], remembered.append)) is None  # fenced
    assert remembered == [outcome]


def test_bookkeeping_failures_never_escape_the_batch_hook() -> None:
    def broken(outcome: Outcome) -> None:
        raise RuntimeError("rocksdb is unhappy")

    outcome = Outcome()
    assert (
        asyncio.run(changes.handle_batch(FakeRuntime(outcomes=[outcome]), FakeConsumer(), [], broken))
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
    asyncio.run(changes.handle_batch(runtime, consumer, [], lambda _: None))
    assert consumer.seeks == [(TP(TOPIC, 0), 40), (TP(TOPIC, 1), 5)]  # partition 2 is not ours: left alone
    assert runtime.expected == {(TOPIC, 1): 5}


def test_topics_the_conductor_has_not_subscribed_are_flagged_again_outside_rebalances() -> None:
    subscribed = {"cdc.ks.a": object()}
    assert changes.unsubscribed(["cdc.ks.a", "cdc.ks.b"], subscribed, rebalancing=False) == ["cdc.ks.b"]
    assert changes.unsubscribed(["cdc.ks.a", "cdc.ks.b"], subscribed, rebalancing=True) == []
    assert changes.unsubscribed(["cdc.__cdc_discovery__"], {}, rebalancing=False) == []

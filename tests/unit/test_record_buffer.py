"""app.record_buffer: batches taken from fetches, bounded, and partitions discarded on revoke."""

from __future__ import annotations

import asyncio

import pytest

from app.batching_consumer import to_records
from app.record_buffer import RecordBuffer
from models.batch import Record


def records(topic: str, partition: int, offsets: range) -> list[Record]:
    return [Record(topic, partition, o, b"k", b"v", 1000 + o) for o in offsets]


def test_take_returns_at_most_the_batch_size_in_fetch_order() -> None:
    async def run() -> tuple[list[Record], list[Record], int]:
        buffer = RecordBuffer(100)
        await buffer.put(records("t", 0, range(5)))
        await buffer.put(records("t", 1, range(3)))
        first = await buffer.take(6, within_s=0)
        rest = await buffer.take(6, within_s=0)
        return first, rest, len(buffer)

    first, rest, left = asyncio.run(run())
    assert [(r.partition, r.offset) for r in first] == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0)]
    assert [(r.partition, r.offset) for r in rest] == [(1, 1), (1, 2)]
    assert left == 0


def test_take_waits_for_the_first_record_then_at_most_within_for_more() -> None:
    async def run() -> tuple[list[Record], float]:
        buffer = RecordBuffer(100)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, lambda: asyncio.ensure_future(buffer.put(records("t", 0, range(2)))))
        loop.call_later(0.10, lambda: asyncio.ensure_future(buffer.put(records("t", 0, range(2, 3)))))
        started = loop.time()
        batch = await buffer.take(10, within_s=0.2)
        return batch, loop.time() - started

    batch, waited = asyncio.run(run())
    assert [r.offset for r in batch] == [0, 1, 2]  # the second fetch arrived within the window
    assert 0.2 <= waited < 0.6


def test_take_returns_early_when_the_batch_is_full() -> None:
    async def run() -> float:
        buffer = RecordBuffer(100)
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, lambda: asyncio.ensure_future(buffer.put(records("t", 0, range(10)))))
        started = loop.time()
        await buffer.take(10, within_s=5)
        return loop.time() - started

    assert asyncio.run(run()) < 1


def test_put_waits_while_the_buffer_is_full() -> None:
    async def run() -> list[str]:
        buffer = RecordBuffer(4)
        events: list[str] = []
        await buffer.put(records("t", 0, range(4)))

        async def producer() -> None:
            await buffer.put(records("t", 0, range(4, 6)))
            events.append("put")

        task = asyncio.ensure_future(producer())
        await asyncio.sleep(0.05)
        events.append("before take")
        await buffer.take(3, within_s=0)
        await task
        return events

    assert asyncio.run(run()) == ["before take", "put"]


def test_discard_drops_only_the_revoked_partitions() -> None:
    async def run() -> tuple[int, list[tuple[str, int]]]:
        buffer = RecordBuffer(100)
        await buffer.put(records("t", 0, range(3)) + records("t", 1, range(2)) + records("u", 0, range(1)))
        dropped = buffer.discard({("t", 0), ("u", 0)})
        return dropped, [(r.topic, r.partition) for r in await buffer.take(10, within_s=0)]

    assert asyncio.run(run()) == (4, [("t", 1), ("t", 1)])


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RecordBuffer(0)


def test_consumer_records_become_records() -> None:
    class ConsumerRecord:
        topic, partition, offset, key, value, timestamp = "t", 3, 7, b"k", b"v", 1500

    assert to_records([ConsumerRecord()]) == [Record("t", 3, 7, b"k", b"v", 1500)]


def test_close_wakes_a_waiting_take_with_nothing_and_leaves_buffered_records_to_take() -> None:
    async def run() -> tuple[list[Record], list[Record], list[Record]]:
        buffer = RecordBuffer(10)
        waiting = asyncio.ensure_future(buffer.take(5, 1.0))
        await asyncio.sleep(0.01)
        buffer.close()
        woken = await asyncio.wait_for(waiting, 1)
        await buffer.put([Record("t", 0, 7, b"k", b"v")])
        left = await buffer.take(5, 0.01)
        return woken, left, await asyncio.wait_for(buffer.take(5, 1.0), 1)

    woken, left, after = asyncio.run(run())
    assert (woken, [r.offset for r in left], after) == ([], [7], [])

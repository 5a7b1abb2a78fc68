"""Faust's Kafka consumer, delivering change-topic records in whole fetches instead of one event at a time.

Faust hands every message to its conductor through ``wait_first(callback(message), suspend_flow)`` (4 tasks,
``asyncio.wait`` and 3 cancellations per message), then wraps it in an Event, queues it on a stream, acks it
and calls every sensor. Profiled on the 2-core machine (bench/results/pipeline.md) that machinery took 46 %
of the worker's GIL time at ~2,300 events/s, more than the whole applier. This subclass (Faust's documented
extension point: an app may replace its transport's ``Consumer`` class) keeps Faust's consumer group, its
rebalance protocol, its thread and flow control, and changes only what happens to a fetch:

- records of change topics (:attr:`batch_topic`) go, as :class:`models.batch.Record`, into
  :attr:`buffer` (bounded); the change agent takes them from there in batches;
- records of every other topic (Faust's changelogs and its own topics) take Faust's per-message path, as
  before.

Offsets: nothing is acked through Faust for change topics; the agent commits each batch's next offsets to
Kafka (:meth:`commit_offsets`), as a hint for where fetching resumes and for lag tools. PostgreSQL stays the
truth (records below its offset are skipped, a fetch past it seeks back).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service

from app.record_buffer import RecordBuffer
from models.batch import Record

DEFAULT_BUFFER = 16_384


def _never(topic: str) -> bool:
    return False


class BatchingConsumer(faust_aiokafka.Consumer):
    batch_topic: Callable[[str], bool] = _never
    """Which topics bypass Faust's per-message path (:meth:`configure`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffer = RecordBuffer(DEFAULT_BUFFER)

    def configure(self, *, batch_topic: Callable[[str], bool], capacity: int) -> None:
        """Which topics to batch, and how many records to buffer (at start-up, before the first fetch)."""
        self.batch_topic = batch_topic
        self.buffer = RecordBuffer(max(capacity, DEFAULT_BUFFER))

    async def commit_offsets(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        """Commit ``{(topic, partition): next offset}`` to Kafka (only partitions still assigned); False when
        Kafka refused (a rebalance under way). Not through Faust's ``_commit``, which crashes the worker on
        such a refusal (seen with two workers rebalancing): here it is only a hint, PostgreSQL has the
        offsets."""
        assigned = self.assignment()
        wanted = {TP(t, p): o for (t, p), o in offsets.items() if TP(t, p) in assigned}
        if not wanted:
            return True
        thread = self._thread
        consumer = thread._ensure_consumer()
        try:
            await thread.call_thread(
                consumer.commit,
                {
                    TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(o, "")
                    for tp, o in wanted.items()
                },
            )
        except KafkaError as error:
            self.log.info("offset hint not committed: %r", error)
            return False
        now = time.monotonic()
        thread.tp_last_committed_at.update(dict.fromkeys(wanted, now))
        return True

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - the worker's fetch loop
        """Faust's fetch loop (:meth:`faust.transport.consumer.Consumer._drain_messages`), fetch by fetch."""
        consumer_stopped = cast(Service, self)._stopped.is_set
        fetcher_stopped = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    await self._seek_back()
                    continue
                await self._deliver(records, active)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise

    async def _seek_back(self) -> None:
        """As Faust does: records fetched while the flow stopped (a rebalance) are dropped and the partitions
        sought back to their committed offsets. A partition may be unassigned by then (the rebalance moved
        on): Faust logs and goes on, and so does this (an uncaught error here stopped a worker in the
        2-worker crash test)."""
        try:
            await self.perform_seek()
        except Exception as error:
            self.log.warning("seek back while flow not active failed: %r", error)

    async def _deliver(self, records: Mapping[TP, list[Any]], active: set[TP] | None) -> None:
        batch: list[Record] = []
        generation = self.app.consumer_generation_id
        for tp, fetched in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            if self.batch_topic(tp.topic):
                batch.extend(to_records(fetched))
            else:
                await self._deliver_one_by_one(tp, fetched, generation)
        if batch:
            await self.wait_first(self.buffer.put(batch), self.suspend_flow.wait())

    async def _deliver_one_by_one(self, tp: TP, fetched: list[Any], generation: int) -> None:
        """Faust's own path, for its changelog and internal topics."""
        for record in fetched:
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return
            read = self._read_offset[tp]
            if read is None or record.offset >= read:
                await self.wait_first(self.callback(self._to_message(tp, record)), self.suspend_flow.wait())
                self._read_offset[tp] = record.offset


def to_records(fetched: Iterable[Any]) -> list[Record]:
    """aiokafka ``ConsumerRecord``s -> our records (pure)."""
    return [Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp) for r in fetched]


class BatchingTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`BatchingConsumer`."""

    Consumer = BatchingConsumer

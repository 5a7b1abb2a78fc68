"""A bounded buffer of consumed records between the Kafka fetcher and the change agent, taken in batches.

The fetcher puts whole fetches (hundreds of records per call); the agent takes up to ``batch_size`` records
at a time, waiting at most ``within`` seconds for a batch to fill once its first record is there. The fetcher
waits while the buffer is full, so memory stays bounded and Kafka's own prefetch throttles the broker reads.
Nothing here knows Kafka or Faust: it is an asyncio data structure, unit-tested on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Collection, Iterable

from models.batch import TP, Record


class RecordBuffer:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self.capacity = capacity
        self._records: deque[Record] = deque()
        self._changed = asyncio.Event()
        """Set whenever records are added or removed; waiters clear it and re-check their condition."""
        self._closed = False

    def __len__(self) -> int:
        return len(self._records)

    def partitions(self) -> set[TP]:
        """The partitions with records waiting here."""
        return {(r.topic, r.partition) for r in self._records}

    async def put(self, records: Iterable[Record]) -> None:
        """Add ``records`` (one fetch), after waiting while the buffer is full. A fetch is never split, so
        the buffer may exceed its capacity by one fetch."""
        while len(self._records) >= self.capacity:
            await self._wait_change()
        self._records.extend(records)
        self._changed.set()

    async def take(self, max_records: int, within_s: float) -> list[Record]:
        """Up to ``max_records`` records, in fetch order: waits for the first without limit, then up to
        ``within_s`` seconds for more (returns early when ``max_records`` are there). After :meth:`close`,
        an empty buffer answers ``[]`` at once."""
        while not self._records:
            if self._closed:
                return []
            await self._wait_change()
        deadline = time.monotonic() + within_s
        while len(self._records) < max_records:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self._wait_change(), left)
            except TimeoutError:
                break
        n = min(max_records, len(self._records))
        batch = [self._records.popleft() for _ in range(n)]
        self._changed.set()
        return batch

    def discard(self, partitions: Collection[TP]) -> int:
        """Drop the buffered records of ``partitions`` (revoked: their new owner reads them); returns how many."""
        if not partitions or not self._records:
            return 0
        kept = [r for r in self._records if (r.topic, r.partition) not in partitions]
        dropped = len(self._records) - len(kept)
        self._records = deque(kept)
        self._changed.set()
        return dropped

    def close(self) -> None:
        """Wake a waiting :meth:`take` (shutdown): with nothing buffered it returns ``[]``, now and later."""
        self._closed = True
        self._changed.set()

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

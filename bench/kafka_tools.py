"""A background topic reader for the benchmarks (topics are made with :func:`app.testing.create_topics`)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from app.testing import LOG_APPEND_TIME


class Collector(threading.Thread):
    """Consumes one topic from the beginning in a thread; ``on_record(record, received_ms)`` sees each record."""

    def __init__(self, bootstrap: str, topic: str, on_record: Callable[[Any, float], None]) -> None:
        super().__init__(daemon=True, name=f"collector-{topic}")
        self.bootstrap, self.topic, self.on_record = bootstrap, topic, on_record
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.non_append_time = 0

    def run(self) -> None:
        try:
            asyncio.run(self._consume())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            self.ready.set()
            while not self.stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                received_ms = time.time_ns() / 1e6
                for records in batches.values():
                    for r in records:
                        if r.timestamp_type != LOG_APPEND_TIME:
                            self.non_append_time += 1
                        self.on_record(r, received_ms)
        finally:
            await consumer.stop()

    def start_and_wait(self, timeout: float = 30.0) -> None:
        self.start()
        if not self.ready.wait(timeout):
            raise RuntimeError(f"consumer of {self.topic} not ready after {timeout:.0f}s")
        if self.error is not None:
            raise RuntimeError(f"consumer of {self.topic} failed: {self.error!r}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)

"""Running a replay job: its records re-enter the stream's apply path chunk by chunk, each chunk one
PostgreSQL transaction holding its effect, the records' new status and the job's counts.

Any worker (or the CLI) may run a job; records are locked ``FOR UPDATE SKIP LOCKED``, so two runners of the
same job split its records and never apply or count one twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg_pool import ConnectionPool

from app import tracing
from app.dlq import store
from app.sink.applier import Applier
from app.sink.failures import describe
from models.batch import Record
from models.dlq import chunk_size, eta_s, pause_for

Call = Callable[..., Awaitable[Any]]
"""``call(what, fn, *args)``: run the blocking ``fn`` (the runtime retries what pauses, with backoff)."""


@dataclass(frozen=True)
class Progress:
    job_id: int
    total: int
    replayed: int
    failed: int
    elapsed_s: float

    @property
    def done(self) -> int:
        return self.replayed + self.failed

    @property
    def eta_s(self) -> float | None:
        return eta_s(self.done, self.total, self.elapsed_s)


def to_record(row: dict[str, Any]) -> Record:
    """The Kafka record a dead letter was (as the stream saw it)."""
    headers = row.get("headers") or {}
    key, value = row["key"], row["value"]
    return Record(
        row["topic"],
        int(row["partition"]),
        int(row["offset"]),
        bytes(key) if key is not None else None,
        bytes(value) if value is not None else None,
        headers.get("timestamp_ms"),
    )


class Replayer:
    """The blocking halves of a replay, each in its own transaction on the worker's pool."""

    def __init__(self, pool: ConnectionPool[Any], applier: Applier, prefix: str, owner: str) -> None:
        self.pool = pool
        self.applier = applier
        self.prefix = prefix
        self.owner = owner

    def claim(self, stale_s: float, job_id: int | None = None) -> dict[str, Any] | None:
        with self.pool.connection() as conn:
            return store.claim_job(conn, self.owner, stale_s, job_id)

    def take(self, job: dict[str, Any]) -> int:
        with self.pool.connection() as conn:
            return store.take_records(conn, job, self.prefix)

    def chunk(self, job_id: int, size: int) -> tuple[int, int] | None:
        """Replay up to ``size`` of the job's records; (replayed, failed), or None when none is free."""
        with self.pool.connection() as conn, conn.transaction():
            rows = store.next_records(conn, job_id, size)
            if not rows:
                return None
            dead = self.applier.replay(conn, [to_record(r) for r in rows])
            ids = {(r["topic"], r["partition"], r["offset"]): int(r["id"]) for r in rows}
            failed = [
                (ids[(d.record.topic, d.record.partition, d.record.offset)], d.reason, d.message)
                for d in dead
            ]
            again = {f[0] for f in failed}
            replayed = [int(r["id"]) for r in rows if int(r["id"]) not in again]
            store.settle(conn, job_id, replayed, failed)
            return len(replayed), len(failed)

    def remaining(self, job_id: int) -> int:
        with self.pool.connection() as conn:
            return store.remaining(conn, job_id)

    def finish(self, job_id: int, error: str | None = None) -> dict[str, Any] | None:
        with self.pool.connection() as conn, conn.transaction():
            return store.finish_job(conn, job_id, error)


@tracing.traced("cdc.dlq.replay.job")
async def run_job(
    replayer: Replayer,
    job: dict[str, Any],
    call: Call,
    on_progress: Callable[[Progress], None] = lambda _: None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> dict[str, Any] | None:
    """Run a claimed job to its end (``done``; ``failed`` with the error if one stops it); the final row.
    A rate-limited job is paced to its ``rate``; an unlimited one goes chunk after chunk."""
    job_id, rate = int(job["id"]), job["rate"]
    tracing.annotate(job_id=job_id, mode=str(job.get("mode", "")))
    try:
        total = await call("replay-take", replayer.take, job)
        replayed, failed = int(job["replayed"]), int(job["failed"])
        started, done = time.monotonic(), 0
        while True:
            result = await call("replay", replayer.chunk, job_id, chunk_size(rate))
            if result is None:
                if await call("replay-count", replayer.remaining, job_id) == 0:
                    break
                await sleep(0.2)  # another runner holds the rest: wait for it to settle them
                continue
            replayed, failed, done = replayed + result[0], failed + result[1], done + sum(result)
            elapsed = time.monotonic() - started
            on_progress(Progress(job_id, total, replayed, failed, elapsed))
            await sleep(pause_for(done, rate, elapsed))
    except Exception as error:
        final: dict[str, Any] | None = await call("replay-finish", replayer.finish, job_id, describe(error))
        return final
    final = await call("replay-finish", replayer.finish, job_id)
    return final

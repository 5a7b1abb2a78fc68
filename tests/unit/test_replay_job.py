"""The replay job loop (``app.dlq.replay.run_job``) with a fake replayer: chunk by chunk to the end, paced when
rate-limited, waiting while another runner holds the rest, and ending ``failed`` (records released) when an
error stops it."""

from __future__ import annotations

import asyncio
from typing import Any

from app.dlq.replay import Progress, run_job, to_record


class FakeReplayer:
    def __init__(
        self,
        chunks: list[tuple[int, int] | None],
        remaining: list[int] | None = None,
        fail_at: int | None = None,
    ) -> None:
        self.chunks, self.remaining_counts = chunks, remaining or []
        self.fail_at, self.calls = fail_at, 0
        self.finished: list[str | None] = []

    def take(self, job: dict[str, Any]) -> int:
        return 30

    def chunk(self, job_id: int, size: int) -> tuple[int, int] | None:
        self.calls += 1
        if self.fail_at == self.calls:
            raise RuntimeError("cassandra went away")
        return self.chunks.pop(0) if self.chunks else None

    def remaining(self, job_id: int) -> int:
        return self.remaining_counts.pop(0) if self.remaining_counts else 0

    def finish(self, job_id: int, error: str | None = None) -> dict[str, Any]:
        self.finished.append(error)
        return {"id": job_id, "status": "failed" if error else "done", "error": error}


async def call(what: str, fn: Any, *args: Any) -> Any:
    return fn(*args)


def job(rate: float | None = None) -> dict[str, Any]:
    return {"id": 7, "rate": rate, "replayed": 0, "failed": 0}


def run(replayer: FakeReplayer, rate: float | None = None) -> tuple[Any, list[Progress], list[float]]:
    seen: list[Progress] = []
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    final = asyncio.run(run_job(replayer, job(rate), call, seen.append, sleep))  # type: ignore[arg-type]
    return final, seen, sleeps


def test_a_job_runs_chunk_by_chunk_to_its_end_and_reports_progress() -> None:
    replayer = FakeReplayer([(10, 0), (9, 1), (10, 0)])
    final, seen, _ = run(replayer)
    assert final["status"] == "done"
    assert [(p.replayed, p.failed, p.done, p.total) for p in seen] == [
        (10, 0, 10, 30),
        (19, 1, 20, 30),
        (29, 1, 30, 30),
    ]
    assert replayer.finished == [None]


def test_a_rate_limited_job_is_paced() -> None:
    _, _, sleeps = run(FakeReplayer([(10, 0), (10, 0), (10, 0)]), rate=100.0)
    # 10 records at 100/s: about 0.1 s per chunk (minus the little time the fake took)
    assert len(sleeps) == 3
    assert all(0.05 < s <= 0.1 for s in sleeps[:1])
    assert sum(sleeps) > 0.25


def test_it_waits_while_another_runner_holds_the_rest() -> None:
    replayer = FakeReplayer([(10, 0)], remaining=[5, 5, 0])
    final, _, sleeps = run(replayer)
    assert final["status"] == "done"
    assert sleeps.count(0.2) == 2


def test_an_error_ends_the_job_failed_with_it() -> None:
    replayer = FakeReplayer([(10, 0), (10, 0)], fail_at=2)
    final, seen, _ = run(replayer)
    assert final["status"] == "failed"
    assert replayer.finished == ["RuntimeError: cassandra went away"]
    assert len(seen) == 1


def test_a_dead_letter_row_is_the_record_the_stream_saw() -> None:
    row = {
        "topic": "cdc.ks.t",
        "partition": 2,
        "offset": 41,
        "key": memoryview(b"k"),
        "value": None,
        "headers": {"timestamp_ms": 1700},
    }
    record = to_record(row)
    assert (record.topic, record.partition, record.offset, record.key, record.value, record.timestamp_ms) == (
        "cdc.ks.t",
        2,
        41,
        b"k",
        None,
        1700,
    )

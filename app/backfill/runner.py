"""Running a backfill job: each table's token ranges read in parallel (paged, at the job's consistency), each
batch of rows applied through the stream's merge and store in one transaction with the range's progress.
Shared by ``cdc backfill`` and ``POST /backfill``.

A range that fails on a dependency (PostgreSQL or Cassandra down, a timeout) is retried with backoff from its
last committed batch; one that fails otherwise, or keeps failing, is recorded as failed (the job then ends
``failed``) and ``--resume`` tries it again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.query import tuple_factory

from app import metrics, pg_connection, tracing
from app.backfill import store
from app.backfill.apply import ScannedCollections
from app.clock import now_us
from app.cql import table_name
from app.logging import redact_text
from app.settings import Settings
from app.sink.applier import Applier
from app.sink.failures import classify
from models.backfill import RowLayout, ScannedRow, scan_query, scanned_row

log = structlog.get_logger("cdc.backfill")

ProgressFactory = Callable[[str, int], Callable[[int, int], None]]
"""``(table, ranges) -> update(ranges done, rows applied)``."""

ATTEMPTS = 6
"""Tries of a range failing on a dependency (backoff 2, 4, ... 30 s) before it is recorded as failed."""
HEARTBEAT_S = 5.0


@dataclass(frozen=True)
class BackfillOptions:
    ranges: int = 256
    parallel: int = 4
    rate: float | None = None
    page_size: int = 1000
    batch_rows: int = 2000
    consistency: str = "LOCAL_QUORUM"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> BackfillOptions:
        return cls(**{k: v for k, v in body.items() if k in cls.__dataclass_fields__})

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> BackfillOptions:
        b = settings.backfill
        base = cls(b.ranges, b.parallel, b.rate, b.page_size, b.batch_rows, b.consistency)
        return cls(**{**asdict(base), **{k: v for k, v in overrides.items() if v is not None}})


def checked_tables(given: Sequence[str]) -> list[str]:
    """``keyspace.table`` names (at least one), or ValueError naming the first that is not one."""
    if not given:
        raise ValueError("name at least one table (keyspace.table)")
    bad = [t for t in given if "." not in t or t.startswith(".") or t.endswith(".")]
    if bad:
        raise ValueError(f"table {bad[0]!r}: use keyspace.table")
    return list(dict.fromkeys(given))


def start(settings: Settings, tables: Sequence[str], options: BackfillOptions, owner: str = "") -> int:
    """Record a job and its ranges; its id."""
    from app.sink.checkpoints import ensure_meta

    names = checked_tables(tables)
    with pg_connection.connect(settings, autocommit=True) as conn:
        ensure_meta(conn)
        return store.start_job(conn, names, options.as_dict(), owner, options.ranges)


class Pacer:
    """At most ``rate`` rows per second over every thread of a job (None: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def take(self, rows: int) -> None:
        if self.rate is None or rows == 0:
            return
        with self._lock:
            now = time.monotonic()
            at = max(self._next, now)
            self._next = at + rows / self.rate
        if at > now:
            time.sleep(at - now)


@dataclass
class _Cursor:
    """A range being applied: where it resumes (the last token committed) and what it applied."""

    row: store.RangeRow
    position: int
    rows: int = 0


@dataclass
class _Tally:
    done: int = 0
    rows: int = 0
    read_again: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class TableRun:
    """One table of a job."""

    def __init__(
        self,
        applier: Applier,
        session: Any,
        settings: Settings,
        job_id: int,
        name: str,
        options: BackfillOptions,
    ) -> None:
        self.applier, self.session, self.settings = applier, session, settings
        self.job_id, self.name, self.options = job_id, name, options
        keyspace, _, table = name.partition(".")
        self.path = (keyspace, table)
        entry = applier.registry.resolve(keyspace, table)  # the mirror is created if it is new
        self.schema = entry.schema
        self.layout = RowLayout.of(self.schema)
        self.statement = session.prepare(scan_query(self.schema, table_name(keyspace, table)))
        self.profile = session.execution_profile_clone_update(
            EXEC_PROFILE_DEFAULT,
            row_factory=tuple_factory,
            consistency_level=ConsistencyLevel.name_to_value[options.consistency],
        )
        self.tally = _Tally()
        self._beat = 0.0

    def run(self, pacer: Pacer, progress: ProgressFactory) -> dict[str, Any]:
        """Apply the table's open ranges, ``parallel`` at a time; each is claimed first (another runner of
        the same job may hold it). This run's figures, and the job's for the table."""
        started = time.monotonic()
        with self.applier.pool.connection() as conn:
            ranges = store.open_ranges(conn, self.job_id, self.name)
        total = self._progress()["ranges"]
        self.tally.done = total - len(ranges)
        update = progress(self.name, total)
        update(self.tally.done, 0)
        remaining = metrics.backfill_ranges_remaining.labels(self.name)
        remaining.set(len(ranges))
        queue = iter(ranges)

        def claimer() -> None:
            with pg_connection.connect(self.settings, autocommit=True) as session:
                while (row := next(queue, None)) is not None:
                    claimed = store.claim_range(session, self.job_id, row)
                    if claimed is None:
                        continue  # another runner holds it, or finished it
                    try:
                        ok = self._range(_Cursor(claimed, claimed.resume_from), pacer)
                    finally:
                        store.release_range(session, self.job_id, claimed)
                    with self.tally.lock:
                        self.tally.done += 1 if ok else 0
                        remaining.dec()
                        update(self.tally.done, self.tally.rows)

        with ThreadPoolExecutor(self.options.parallel, thread_name_prefix="cdc-backfill") as pool:
            for future in [pool.submit(claimer) for _ in range(self.options.parallel)]:
                future.result()
        stored = self._progress()
        remaining.set(total - int(stored["ranges_done"]) - int(stored["ranges_failed"]))  # others' too
        update(total, self.tally.rows)
        seconds = time.monotonic() - started
        return {
            "table": self.name,
            "rows": int(stored["rows"]),
            "rows_this_run": self.tally.rows,
            "ranges": total,
            "ranges_done": int(stored["ranges_done"]),
            "ranges_failed": int(stored["ranges_failed"]),
            "collections_read_again": self.tally.read_again,
            "seconds": round(seconds, 3),
            "rows_per_second": round(self.tally.rows / seconds) if seconds > 0 else None,
        }

    def _progress(self) -> dict[str, Any]:
        with self.applier.pool.connection() as conn:
            return next(p for p in store.progress(conn, self.job_id) if p["table"] == self.name)

    def _range(self, cursor: _Cursor, pacer: Pacer) -> bool:
        """Apply one range to its end, retrying dependency failures from the last committed batch."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._scan(cursor, pacer)
                return True
            except Exception as error:
                if not classify(error).pauses or attempt == ATTEMPTS:
                    self._fail(cursor, error)
                    return False
                wait = min(30.0, 2.0**attempt)
                log.warning(
                    "backfill range failed; retrying", table=self.name, error=str(error), retry_in_s=wait
                )
                time.sleep(wait)
        return False

    def _fail(self, cursor: _Cursor, error: BaseException) -> None:
        text = redact_text(f"{type(error).__name__}: {error}")
        log.error(
            "backfill range failed", table=self.name, range=cursor.row.token_range.as_list(), error=text
        )
        with self.applier.pool.connection() as conn:
            store.fail_range(conn, self.job_id, self.name, cursor.row.token_range, text)

    def _scan(self, cursor: _Cursor, pacer: Pacer) -> None:
        """Read the range after ``cursor.position`` page by page; a batch ends between two partitions once
        it holds ``batch_rows`` rows, so its last token is a position to resume after."""
        end = cursor.row.token_range.end
        if cursor.position >= end:
            self._commit(cursor, [], done=True)
            return
        bound = self.statement.bind((cursor.position, end))
        bound.fetch_size = self.options.page_size
        read_us = now_us()
        result = self.session.execute(bound, execution_profile=self.profile)
        batch: list[ScannedRow] = []
        limit = self.options.batch_rows
        while True:
            for record in result.current_rows:
                row = scanned_row(self.layout, record, read_us, read_us)
                if len(batch) >= limit and row.token != batch[-1].token:
                    self._commit(cursor, batch, done=False)
                    pacer.take(len(batch))
                    batch = []
                batch.append(row)
            if not result.has_more_pages:
                break
            read_us = now_us()
            result.fetch_next_page()
        self._commit(cursor, batch, done=True)
        pacer.take(len(batch))

    def _commit(self, cursor: _Cursor, batch: Sequence[ScannedRow], done: bool) -> None:
        """One transaction: the batch's rows through the stream's apply path, and the range's progress."""
        applier, path = self.applier, self.path
        reads = ScannedCollections(self.schema, batch, applier.reader)
        position = batch[-1].token if batch else None
        with applier.pool.connection() as conn, conn.transaction():
            if batch:
                mutations = applier.transformed(path, [m for row in batch for m in row.mutations])
                applier.apply_rows(conn, path, mutations, reads.adjust, reads)
            store.save_batch(conn, self.job_id, self.name, cursor.row.token_range, len(batch), position, done)
            if time.monotonic() - self._beat > HEARTBEAT_S:
                self._beat = time.monotonic()
                store.heartbeat(conn, self.job_id)
        if position is not None:
            cursor.position = position
        cursor.rows += len(batch)
        metrics.backfill_rows.labels(self.name).inc(len(batch))
        with self.tally.lock:
            self.tally.rows += len(batch)
            self.tally.read_again += reads.read_again


def _quiet(table: str, total: int) -> Callable[[int, int], None]:
    return lambda done, rows: None


@tracing.traced("cdc.backfill.job")
def run(
    settings: Settings, job_id: int, progress: ProgressFactory = _quiet, owner: str = ""
) -> dict[str, Any]:
    """Run (or resume) a job to its end, blocking; the job's final row with its report. Only ranges not done
    are read; each resumes after its last committed batch."""
    from app.runtime import Runtime

    tracing.annotate(job_id=job_id)
    with pg_connection.connect(settings, autocommit=True) as conn:
        found = store.job(conn, job_id)
        if found is None:
            raise LookupError(f"no backfill job {job_id}")
        store.reopen(conn, job_id, owner or found["owner"])
    options = BackfillOptions.from_dict(found["options"])
    pool_size = max(settings.postgres.pool_max_size, options.parallel + 1)
    postgres = settings.postgres.model_copy(update={"pool_max_size": pool_size})
    runtime = Runtime(settings.model_copy(update={"postgres": postgres}))
    try:
        applier = asyncio.run(runtime.ensure_started())
        pacer = Pacer(options.rate)
        tables, errors = [], []
        for name in found["tables"]:
            try:
                table = TableRun(applier, runtime.session, settings, job_id, name, options)
                tables.append(table.run(pacer, progress))
            except Exception as error:  # the table is unknown, quarantined, ...: the others still run
                errors.append(f"{name}: {type(error).__name__}: {error}")
        with pg_connection.connect(settings, autocommit=True) as conn:
            return store.finish_job(conn, job_id, {"tables": tables}, errors)
    finally:
        runtime.close()

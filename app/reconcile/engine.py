"""The CHECKSUM and ROW_COUNT strategies for one table: digest each token range on both sides, bisect the ranges
whose digests differ down to ``row_threshold`` rows, compare those row by row, then recheck the ranges with
differences once the pipeline has had time to catch up: only a difference seen both times, and not in flight
at the recheck (``models.reconcile.in_flight``), is a mismatch.

Blocking code (threads, the driver, psycopg); every range streams, so memory is bounded by the threshold.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.query import tuple_factory
from psycopg_pool import ConnectionPool
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from app.reconcile.scan import (
    ScannedRow,
    cassandra_query,
    converters,
    count_query,
    next_token_query,
    postgres_count,
    postgres_next_token,
    scan_cassandra,
    scan_postgres,
)
from app.sink.failures import is_transient
from models.mirror_spec import MirrorSpec
from models.reconcile import MASK, Candidate, Digest, Step, candidates, in_flight, next_step
from models.table_schema import TableSchema
from models.token_ranges import MAX_TOKEN, MIN_TOKEN, TokenRange, split


class Strategy(StrEnum):
    ROW_COUNT = "ROW_COUNT"
    """Per range, the rows each server counts."""
    CHECKSUM = "CHECKSUM"
    """Per range, count and hash of every row; differing ranges bisected down to rows."""
    SAMPLE = "SAMPLE"
    """N partitions at random tokens, compared row by row."""
    TIMESTAMP_RANGE = "TIMESTAMP_RANGE"
    """The rows either side wrote within a window of write times, compared row by row."""


@dataclass(frozen=True)
class Found:
    """A row that differs, with both sides' canonical values (None: absent) and write times."""

    candidate: Candidate
    cassandra: dict[str, Any] | None
    postgres: dict[str, Any] | None
    cassandra_ts: int | None
    postgres_ts: int | None
    token_range: TokenRange
    cassandra_key: tuple[Any, ...] = ()
    """The key as cassandra-driver returned it (to read the row again for a repair)."""
    postgres_key: tuple[Any, ...] = ()
    """The key as psycopg returned it from the mirror."""
    token: int | None = None
    """The partition's token (a recheck reads just that partition)."""


@dataclass
class RangeReport:
    token_range: TokenRange
    cassandra: Digest
    postgres: Digest
    found: list[Found] = field(default_factory=list)


@dataclass
class TableReport:
    table: str
    strategy: Strategy
    cassandra_rows: int = 0
    postgres_rows: int = 0
    ranges: int = 0
    mismatches: list[Found] = field(default_factory=list)
    in_flight: list[Found] = field(default_factory=list)
    """Differences still catching up at the recheck: not counted."""
    count_difference: int = 0
    """ROW_COUNT: the sum over ranges of |Cassandra rows - mirror rows|."""
    errors: list[str] = field(default_factory=list)
    """Ranges that failed (stored as such: ``cdc reconcile --rerun`` reads them again)."""
    seconds: float = 0.0


Progress = Callable[[int, int, int], None]
"""``(ranges done, ranges total, rows scanned)``."""


class RangeChecker(Protocol):
    """What :func:`run_table` needs of :class:`TableCheck` (a fake in unit tests)."""

    schema: TableSchema

    def digests(self, token_range: TokenRange, hashed: bool = True) -> tuple[Digest, Digest]: ...

    def check(self, token_range: TokenRange) -> RangeReport: ...

    def differences(self, token_range: TokenRange) -> list[Found]: ...

    def sample_ranges(self, count: int, seed: int) -> list[TokenRange]: ...

    def window(self, token_range: TokenRange, since_us: int, until_us: int) -> RangeReport: ...


class TableCheck:
    def __init__(
        self,
        session: Any,
        pool: ConnectionPool[Any],
        schema: TableSchema,
        spec: MirrorSpec,
        row_threshold: int = 1000,
        page_size: int = 5000,
    ) -> None:
        if spec.transforms is not None:
            schema = spec.transforms.mirrored(schema)  # a dropped column is on neither side
        self.session, self.pool, self.schema, self.spec = session, pool, schema, spec
        self.row_threshold, self.page_size = row_threshold, page_size
        self.keep_rows = 4 * row_threshold
        """A range's rows are kept from its digest pass up to this many (memory per range read at once)."""
        self.statement = session.prepare(cassandra_query(schema))
        self.profile = session.execution_profile_clone_update(EXEC_PROFILE_DEFAULT, row_factory=tuple_factory)
        """Plain tuples: the scans read by position, cheaper than the default named tuples."""
        self.count = session.prepare(count_query(schema))
        self.next_token = session.prepare(next_token_query(schema))
        self.pg_next_token = postgres_next_token(spec)
        self.pg_count = postgres_count(spec)
        self.to_canonical = (
            converters(schema, "cassandra", spec.transforms),
            converters(schema, "postgres", spec.transforms),
        )
        self.columns = [c.name for c in (*schema.partition_key, *schema.clustering, *schema.columns)]

    # -- one range --------------------------------------------------------------------------------------------
    def _cassandra(self, token_range: TokenRange) -> Iterator[ScannedRow]:
        return scan_cassandra(
            self.session,
            self.statement,
            self.schema,
            self.to_canonical[0],
            token_range,
            self.page_size,
            self.profile,
        )

    def _postgres(self, conn: Any, token_range: TokenRange) -> Iterator[ScannedRow]:
        return scan_postgres(conn, self.schema, self.spec, self.to_canonical[1], token_range, self.page_size)

    def digests(self, token_range: TokenRange, hashed: bool = True) -> tuple[Digest, Digest]:
        """Both sides' digest of the range; with ``hashed`` False only the counts (server-side)."""
        if not hashed:
            return self._counts(token_range)
        left, right, _ = self._digest(token_range)
        return left, right

    def _counts(self, token_range: TokenRange) -> tuple[Digest, Digest]:
        row = self.session.execute(
            self.count, (token_range.start, token_range.end), execution_profile=self.profile
        ).one()
        with self.pool.connection() as conn:
            found = conn.execute(self.pg_count, (token_range.start, token_range.end)).fetchone()
        return Digest(int(row[0])), Digest(int(found[0]) if found else 0)

    def _digest(self, token_range: TokenRange) -> tuple[Digest, Digest, _Rows | None]:
        """Both digests, and the rows themselves when both sides hold at most ``row_threshold`` (so that a
        small differing range is not read a second time); memory stays bounded by the threshold."""
        left, left_rows = self._fold(self._cassandra(token_range))
        with self.pool.connection() as conn:
            right, right_rows = self._fold(self._postgres(conn, token_range))
        rows = (left_rows, right_rows) if left_rows is not None and right_rows is not None else None
        return left, right, rows

    def _fold(self, rows: Iterator[ScannedRow]) -> tuple[Digest, list[ScannedRow] | None]:
        count, total = 0, 0
        kept: list[ScannedRow] | None = []
        for row in rows:
            count, total = count + 1, total + row.hash
            if kept is not None:
                kept.append(row)  # keyed only if the range is compared row by row
                if len(kept) > self.keep_rows:
                    kept = None
        return Digest(count, total & MASK), kept

    def rows(self, token_range: TokenRange) -> _Rows:
        with self.pool.connection() as conn:
            mirror = list(self._postgres(conn, token_range))
        return list(self._cassandra(token_range)), mirror

    def sample_ranges(self, count: int, seed: int) -> list[TokenRange]:
        """The partitions found at ``count`` random tokens (the first partition after each on either side),
        each as its one-token range; ``seed``: the same job samples the same partitions when run again."""
        rng = random.Random(seed)  # noqa: S311 (sampling, not secrecy)
        tokens: set[int] = set()
        with self.pool.connection() as conn:
            for _ in range(count):
                at = rng.randint(MIN_TOKEN, MAX_TOKEN - 1)
                row = self.session.execute(self.next_token, (at,), execution_profile=self.profile).one()
                found = conn.execute(self.pg_next_token, (at,)).fetchone()
                candidates_ = [
                    t for t in (row[0] if row else None, found[0] if found else None) if t is not None
                ]
                if candidates_:
                    tokens.add(min(candidates_))
        return [TokenRange(t - 1, t) for t in sorted(tokens) if t - 1 >= MIN_TOKEN]

    def window(self, token_range: TokenRange, since_us: int, until_us: int) -> RangeReport:
        """TIMESTAMP_RANGE of one range: the rows written (newest cell) within ``[since, until)`` on either
        side, compared by partition; the counts are those rows."""

        def inside(row: ScannedRow) -> bool:
            return row.ts is not None and since_us <= row.ts < until_us

        left = [r.token for r in self._cassandra(token_range) if inside(r)]
        with self.pool.connection() as conn:
            right = [r.token for r in self._postgres(conn, token_range) if inside(r)]
        found: list[Found] = []
        for token in sorted({t for t in (*left, *right) if t is not None}):
            if token - 1 >= MIN_TOKEN:
                found.extend(self.differences(TokenRange(token - 1, token)))
        return RangeReport(token_range, Digest(len(left)), Digest(len(right)), found)

    def differences(self, token_range: TokenRange, rows: _Rows | None = None) -> list[Found]:
        scanned = rows if rows is not None else self.rows(token_range)
        left, right = ({r.key: r for r in side} for side in scanned)
        found = []
        for c in candidates(
            {k: r.values for k, r in left.items()}, {k: r.values for k, r in right.items()}, self.columns
        ):
            a, b = left.get(c.key), right.get(c.key)
            either = a or b
            found.append(
                Found(
                    c,
                    a.values if a else None,
                    b.values if b else None,
                    a.ts if a else None,
                    b.ts if b else None,
                    token_range,
                    a.raw_key if a else (),
                    b.raw_key if b else (),
                    either.token if either else None,
                )
            )
        return found

    def check(self, token_range: TokenRange) -> RangeReport:
        """CHECKSUM of one range: its digests, bisected where they differ, down to row differences."""
        c, p, rows = self._digest(token_range)
        report = RangeReport(token_range, c, p)
        pending = [(token_range, c, p, rows)]
        while pending:
            r, c, p, rows = pending.pop()
            step = next_step(c, p, r, self.row_threshold)
            if step is Step.BISECT and rows is not None:
                step = Step.ROWS  # the digest pass kept the rows: compare them, nothing to read again
            if step is Step.ROWS:
                report.found.extend(self.differences(r, rows))
            elif step is Step.BISECT:
                pending.extend((half, *self._digest(half)) for half in r.halves())
        return report


_Rows = tuple[list[ScannedRow], list[ScannedRow]]


RangeDone = Callable[[TokenRange, "RangeReport | None", "str | None"], None]
"""``(range, its report, or the error that stopped it)``: called as each range ends (to store it)."""


def run_table(
    check: RangeChecker,
    strategy: Strategy,
    ranges: int = 64,
    concurrency: int = 4,
    recheck_after_s: float = 5.0,
    lag_allowance_s: float = 30.0,
    progress: Progress = lambda done, total, rows: None,
    sleep: Callable[[float], None] = time.sleep,
    resumed: Mapping[TokenRange, RangeReport] | None = None,
    on_range: RangeDone = lambda r, report, error: None,
    sample: tuple[int, int] = (1000, 0),
    window_us: tuple[int, int] | None = None,
) -> TableReport:
    """Check a whole table; ranges run ``concurrency`` at a time. ``resumed``: ranges an earlier run of the
    job finished (not read again). A range that fails is reported (``errors``), the others go on."""
    schema = check.schema
    report = TableReport(f"{schema.keyspace}.{schema.table}", strategy)
    started = time.monotonic()
    parts = _attempts(sleep)(check.sample_ranges, *sample) if strategy is Strategy.SAMPLE else split(ranges)
    report.ranges = len(parts)
    finished = dict(resumed or {})
    todo = [r for r in parts if r not in finished]

    def one(r: TokenRange) -> tuple[TokenRange, RangeReport | None, str | None]:
        try:
            return r, _attempts(sleep)(_range, check, strategy, r, window_us), None
        except Exception as error:  # the range is stored as failed; `--rerun` reads it again
            return r, None, f"{type(error).__name__}: {error}"

    rows = 0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cdc-reconcile") as pool:
        for r, result, error in pool.map(one, todo):
            on_range(r, result, error)
            if result is None:
                report.errors.append(f"range ({r.start}, {r.end}]: {error}")
                continue
            finished[r] = result
            rows += result.cassandra.count + result.postgres.count
            progress(len(finished), len(parts), rows)
    first: list[Found] = []
    for result in finished.values():
        report.cassandra_rows += result.cassandra.count
        report.postgres_rows += result.postgres.count
        report.count_difference += abs(result.cassandra.count - result.postgres.count)
        first.extend(result.found)
    if strategy is not Strategy.ROW_COUNT:
        report.count_difference = 0
        if first:
            _recheck(check, report, first, recheck_after_s, lag_allowance_s, sleep, concurrency)
    report.seconds = time.monotonic() - started
    return report


RANGE_ATTEMPTS = 4
"""A range read that meets a transient fault (a read timeout, a node or connection lost) is tried this many
times, with backoff, before the range is reported as failed."""


def _attempts(sleep: Callable[[float], None]) -> Retrying:
    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(RANGE_ATTEMPTS),
        wait=wait_exponential(multiplier=0.5, max=8),
        sleep=sleep,
        reraise=True,
    )


def _range(
    check: RangeChecker, strategy: Strategy, r: TokenRange, window_us: tuple[int, int] | None
) -> RangeReport:
    if strategy is Strategy.ROW_COUNT:
        return RangeReport(r, *check.digests(r, hashed=False))
    if strategy is Strategy.TIMESTAMP_RANGE:
        if window_us is None:
            raise ValueError("TIMESTAMP_RANGE needs a window of write times (since, until)")
        return check.window(r, *window_us)
    return check.check(r)


def _recheck(
    check: RangeChecker,
    report: TableReport,
    first: list[Found],
    after_s: float,
    lag_allowance_s: float,
    sleep: Callable[[float], None],
    concurrency: int = 4,
) -> None:
    """Only a difference seen again after ``after_s`` counts; one the pipeline is still bringing in (its write
    is newer than the horizon) is in flight."""
    sleep(after_s)
    horizon = int((time.time() - lag_allowance_s) * 1_000_000)
    seen = {(f.candidate.key, f.candidate.kind) for f in first}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cdc-recheck") as pool:

        def differences(r: TokenRange) -> list[Found]:
            return _attempts(sleep)(check.differences, r)

        for again in (f for found in pool.map(differences, _recheck_ranges(first)) for f in found):
            if (again.candidate.key, again.candidate.kind) not in seen:
                continue  # new since the first pass: in flight by definition
            if in_flight(again.candidate, again.cassandra_ts, again.postgres_ts, horizon):
                report.in_flight.append(again)
            else:
                report.mismatches.append(again)


def _recheck_ranges(first: list[Found], per_partition: int = 8) -> list[TokenRange]:
    """What to read again: each difference's partition alone, or the whole range it was found in when that
    range holds more than ``per_partition`` of them (one read instead of many)."""
    by_range: dict[TokenRange, list[Found]] = {}
    for f in first:
        by_range.setdefault(f.token_range, []).append(f)
    ranges: set[TokenRange] = set()
    for token_range, found in by_range.items():
        if len(found) > per_partition:
            ranges.add(token_range)
        else:
            ranges.update(_partition(f) for f in found)
    return sorted(ranges)


def _partition(found: Found) -> TokenRange:
    """The range of just the row's partition (its token), or the range it was found in."""
    if found.token is None or found.token - 1 < MIN_TOKEN:
        return found.token_range
    return TokenRange(found.token - 1, found.token)

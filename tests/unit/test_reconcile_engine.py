"""The table loop of reconciliation (``app.reconcile.engine.run_table``) with a fake range checker: totals, the
recheck (a difference seen once is not counted; one seen again is, unless in flight), ROW_COUNT."""

from __future__ import annotations

import time

from app.reconcile.engine import Found, RangeReport, Strategy, run_table
from app.sink.failures import is_transient
from models.cql_types import parse_cql_type
from models.reconcile import Candidate, Digest, MismatchType
from models.table_schema import Column, TableSchema
from models.token_ranges import TokenRange

SCHEMA = TableSchema("ks", "t", (Column("id", parse_cql_type("int")),))
OLD = 1_000_000  # µs since the epoch: long before any horizon


def found(key: int, kind: MismatchType, r: TokenRange, ts: int | None = OLD) -> Found:
    return Found(Candidate((key,), kind), {"id": key}, None, ts, None, r)


class FakeCheck:
    schema = SCHEMA

    def __init__(
        self, first: dict[int, list[MismatchType]], again: dict[int, list[tuple[MismatchType, int]]]
    ) -> None:
        self.first, self.again = first, again
        self.rechecked: list[TokenRange] = []

    def check(self, r: TokenRange) -> RangeReport:
        key = r.start
        return RangeReport(
            r, Digest(10, 1), Digest(10, 2), [found(key, k, r) for k in self.first.get(key, [])]
        )

    def differences(self, r: TokenRange) -> list[Found]:
        self.rechecked.append(r)
        return [found(r.start, k, r, ts) for k, ts in self.again.get(r.start, [])]

    def digests(self, r: TokenRange, hashed: bool = True) -> tuple[Digest, Digest]:
        return Digest(10), Digest(9 if r.start == self.ranges[0].start else 10)

    ranges: list[TokenRange] = []

    def sample_ranges(self, count: int, seed: int) -> list[TokenRange]:
        return [TokenRange(t - 1, t) for t in range(100, 100 + count)]

    def window(self, r: TokenRange, since_us: int, until_us: int) -> RangeReport:
        return RangeReport(r, Digest(1), Digest(1), [found(r.start, MismatchType.DATA_MISMATCH, r)])


def test_only_a_difference_seen_again_and_not_in_flight_counts() -> None:
    from models.token_ranges import split

    parts = split(4)
    starts = [r.start for r in parts]
    recent = int(time.time() * 1_000_000)
    check = FakeCheck(
        first={
            starts[0]: [MismatchType.MISSING_IN_POSTGRES],
            starts[1]: [MismatchType.DATA_MISMATCH],
            starts[2]: [MismatchType.MISSING_IN_CASSANDRA],
        },
        again={
            starts[0]: [(MismatchType.MISSING_IN_POSTGRES, OLD)],  # persists: drift
            starts[1]: [(MismatchType.DATA_MISMATCH, recent)],  # persists, but written just now: in flight
            starts[3]: [(MismatchType.DATA_MISMATCH, OLD)],
        },  # new at the recheck: not counted
    )
    slept: list[float] = []
    report = run_table(
        check,
        Strategy.CHECKSUM,
        ranges=4,
        concurrency=2,
        recheck_after_s=3.0,
        lag_allowance_s=30.0,
        sleep=slept.append,
    )
    assert slept == [3.0]
    assert [(f.candidate.key, f.candidate.kind) for f in report.mismatches] == [
        ((starts[0],), MismatchType.MISSING_IN_POSTGRES)
    ]
    assert [f.candidate.key for f in report.in_flight] == [(starts[1],)]
    assert sorted(r.start for r in check.rechecked) == sorted(starts[:3])
    assert (report.cassandra_rows, report.postgres_rows, report.ranges) == (40, 40, 4)


def test_no_difference_means_no_recheck_and_row_count_counts_per_range() -> None:
    from models.token_ranges import split

    check = FakeCheck({}, {})
    check.ranges = split(4)
    slept: list[float] = []
    report = run_table(check, Strategy.CHECKSUM, ranges=4, sleep=slept.append)
    assert (slept, report.mismatches) == ([], [])
    counted = run_table(check, Strategy.ROW_COUNT, ranges=4, sleep=slept.append)
    assert (counted.cassandra_rows, counted.postgres_rows, counted.count_difference) == (40, 39, 1)


def test_progress_reports_each_range() -> None:
    seen: list[tuple[int, int]] = []
    check = FakeCheck({}, {})
    run_table(check, Strategy.CHECKSUM, ranges=3, progress=lambda d, t, r: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_sample_checks_the_sampled_partitions_and_timestamp_range_needs_a_window() -> None:
    check = FakeCheck({}, {})
    sampled = run_table(check, Strategy.SAMPLE, sample=(5, 1), sleep=lambda s: None)
    assert (sampled.ranges, sampled.cassandra_rows) == (5, 50)
    failed = run_table(check, Strategy.TIMESTAMP_RANGE, ranges=2, sleep=lambda s: None)
    assert len(failed.errors) == 2
    assert "window" in failed.errors[0]
    windowed = run_table(check, Strategy.TIMESTAMP_RANGE, ranges=2, window_us=(0, 10), sleep=lambda s: None)
    assert (windowed.errors, windowed.cassandra_rows) == ([], 2)


class Flaky(FakeCheck):
    """Each range's first read times out (a transient fault); ``hard`` ranges fail for good."""

    def __init__(self, error: Exception) -> None:
        super().__init__({}, {})
        self.error, self.tried = error, list[TokenRange]()

    def check(self, r: TokenRange) -> RangeReport:
        self.tried.append(r)
        if self.tried.count(r) == 1 or not is_transient(self.error):
            raise self.error
        return super().check(r)


def test_a_transient_fault_is_retried_with_backoff_and_another_fails_the_range_at_once() -> None:
    from cassandra import OperationTimedOut

    slept: list[float] = []
    timeout = Flaky(OperationTimedOut("timed out"))
    report = run_table(timeout, Strategy.CHECKSUM, ranges=3, concurrency=1, sleep=slept.append)
    assert (report.errors, report.cassandra_rows, len(timeout.tried), len(slept)) == ([], 30, 6, 3)
    bad = Flaky(ValueError("not a fault to retry"))
    failed = run_table(bad, Strategy.CHECKSUM, ranges=3, concurrency=1, sleep=slept.append)
    assert (len(failed.errors), len(bad.tried)) == (3, 3)
    assert "ValueError: not a fault to retry" in failed.errors[0]

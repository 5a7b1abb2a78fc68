"""Reconciliation planning (pure): row hashes, order-independent range digests, what to do with a range whose
digests differ, and which row differences are real rather than in flight.

Both sides bring a row to the same canonical form first (``app.compare``: values after the type mapping, as
plain JSON data), so the hash of a row is one function used on both sides. A range's digest is its row count
and the sum of its row hashes modulo 2^64: independent of scan order, and a changed, missing or extra row
changes it (a collision needs two differences whose hashes cancel exactly).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from models.token_ranges import TokenRange

MASK = 2**64 - 1


def row_hash(canonical: Sequence[Any]) -> int:
    """A 64-bit hash of one row's canonical values (primary key first, then every column, in schema order)."""
    return int.from_bytes(hashlib.blake2b(orjson.dumps(list(canonical)), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Digest:
    count: int = 0
    total: int = 0
    """Sum of the row hashes modulo 2^64."""

    def plus(self, row: int) -> Digest:
        return Digest(self.count + 1, (self.total + row) & MASK)

    def __add__(self, other: Digest) -> Digest:
        return Digest(self.count + other.count, (self.total + other.total) & MASK)


def digest(hashes: Iterable[int]) -> Digest:
    count, total = 0, 0
    for h in hashes:
        count, total = count + 1, total + h
    return Digest(count, total & MASK)


class Step(StrEnum):
    EQUAL = "equal"
    BISECT = "bisect"
    """Split the range and digest each half."""
    ROWS = "rows"
    """Small enough (or unsplittable): compare it row by row."""


def next_step(cassandra: Digest, postgres: Digest, token_range: TokenRange, row_threshold: int) -> Step:
    """What a range whose digests are known needs next."""
    if cassandra == postgres:
        return Step.EQUAL
    if max(cassandra.count, postgres.count) <= row_threshold or token_range.width < 2:
        return Step.ROWS
    return Step.BISECT


class MismatchType(StrEnum):
    MISSING_IN_POSTGRES = "MISSING_IN_POSTGRES"
    MISSING_IN_CASSANDRA = "MISSING_IN_CASSANDRA"
    DATA_MISMATCH = "DATA_MISMATCH"


@dataclass(frozen=True)
class Candidate:
    """A row that differs between the sides (before the in-flight check)."""

    key: tuple[Any, ...]
    kind: MismatchType
    columns: tuple[str, ...] = ()
    """For ``DATA_MISMATCH``: the columns that differ."""


def candidates(
    cassandra: Mapping[tuple[Any, ...], Mapping[str, Any]],
    postgres: Mapping[tuple[Any, ...], Mapping[str, Any]],
    columns: Sequence[str],
) -> list[Candidate]:
    """The rows that differ between two keyed sets of canonical rows, in key order."""
    found = [Candidate(k, MismatchType.MISSING_IN_POSTGRES) for k in cassandra.keys() - postgres.keys()]
    found += [Candidate(k, MismatchType.MISSING_IN_CASSANDRA) for k in postgres.keys() - cassandra.keys()]
    for key in cassandra.keys() & postgres.keys():
        left, right = cassandra[key], postgres[key]
        changed = tuple(c for c in columns if left.get(c) != right.get(c))
        if changed:
            found.append(Candidate(key, MismatchType.DATA_MISMATCH, changed))
    return sorted(found, key=lambda c: orjson.dumps(list(c.key), default=repr))


def in_flight(candidate: Candidate, cassandra_ts: int | None, mirror_ts: int | None, horizon_ts: int) -> bool:
    """Is this difference the pipeline still catching up, not drift? ``cassandra_ts``: the row's newest write
    time in Cassandra (µs; None when absent there); ``mirror_ts``: the newest write time the mirror holds for
    it (None when absent); ``horizon_ts``: writes after this may not have reached the mirror yet (the recheck's
    time, less the pipeline's lag allowance).

    A row written after the horizon on either side is in flight: Cassandra may hold a write the mirror has not
    applied yet, and a deletion there (a tombstone) shows no write time at all, so a recent write the mirror
    holds may have been deleted since. Drift on such a row is found by the next job, once it is older.
    """
    del candidate  # the rule is the same for every kind of difference
    return any(ts is not None and ts > horizon_ts for ts in (cassandra_ts, mirror_ts))


def drift_percent(mismatches: int, rows: int) -> float:
    """Mismatching rows as a share of the larger side's rows, in percent (0 for an empty table)."""
    return 0.0 if rows <= 0 else round(100.0 * mismatches / rows, 6)

"""Reconciliation planning: token ranges cover the ring exactly, digests are order-independent and see every
kind of difference, the next step of a range, row candidates and the in-flight rule."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.reconcile import (
    Candidate,
    Digest,
    MismatchType,
    Step,
    candidates,
    digest,
    drift_percent,
    in_flight,
    next_step,
    row_hash,
)
from models.token_ranges import FULL_RING, MAX_TOKEN, MIN_TOKEN, TokenRange, of, split


@given(st.integers(min_value=1, max_value=5000))
def test_a_split_covers_the_ring_exactly_and_in_order(count: int) -> None:
    ranges = split(count)
    assert len(ranges) == count
    assert ranges[0].start == MIN_TOKEN
    assert ranges[-1].end == MAX_TOKEN
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    widths = {r.width for r in ranges}
    assert max(widths) - min(widths) <= 1


@given(st.integers(min_value=MIN_TOKEN + 1, max_value=MAX_TOKEN), st.integers(min_value=1, max_value=300))
def test_every_token_lies_in_exactly_one_range(token: int, count: int) -> None:
    ranges = split(count)
    index = of(token, ranges)
    assert ranges[index].contains(token)
    assert sum(r.contains(token) for r in ranges) == 1


def test_halves_and_bounds() -> None:
    first, second = TokenRange(0, 11).halves()
    assert (first, second) == (TokenRange(0, 5), TokenRange(5, 11))
    with pytest.raises(ValueError, match="cannot be split"):
        TokenRange(3, 4).halves()
    with pytest.raises(ValueError, match="not a token range"):
        TokenRange(5, 5)
    assert FULL_RING.width == 2**64 - 1
    with pytest.raises(ValueError, match="outside"):
        of(MIN_TOKEN, split(4))


def test_a_digest_does_not_depend_on_order_and_sees_every_difference() -> None:
    rows = [[i, f"name{i}", [1, 2]] for i in range(200)]
    hashes = [row_hash(r) for r in rows]
    shuffled = hashes[:]
    random.Random(7).shuffle(shuffled)
    assert digest(hashes) == digest(shuffled)
    assert digest(hashes) == digest(hashes[:100]) + digest(hashes[100:])
    changed = [row_hash([0, "name0", [2, 1]]), *hashes[1:]]
    assert digest(changed) != digest(hashes)
    assert digest(hashes[1:]) != digest(hashes)
    assert digest([*hashes, row_hash([999, None, None])]) != digest(hashes)
    assert Digest().plus(5).plus(7) == digest([7, 5])
    # a row is its values in order: None differs from absent, a list's order matters
    assert row_hash([1, None]) != row_hash([1])
    assert row_hash([1, [1, 2]]) != row_hash([1, [2, 1]])


def test_the_next_step_of_a_range() -> None:
    r = TokenRange(0, 1000)
    assert next_step(Digest(5, 1), Digest(5, 1), r, 100) is Step.EQUAL
    assert next_step(Digest(500, 1), Digest(500, 2), r, 100) is Step.BISECT
    assert next_step(Digest(50, 1), Digest(51, 2), r, 100) is Step.ROWS
    assert next_step(Digest(500, 1), Digest(0, 0), TokenRange(0, 1), 100) is Step.ROWS


def test_candidates_name_each_kind_of_difference() -> None:
    cassandra: dict[tuple[Any, ...], dict[str, Any]] = {
        (1,): {"v": 1},
        (2,): {"v": 2},
        (3,): {"v": 3, "w": "a"},
    }
    postgres: dict[tuple[Any, ...], dict[str, Any]] = {
        (2,): {"v": 2},
        (3,): {"v": 3, "w": "b"},
        (4,): {"v": 4},
    }
    assert candidates(cassandra, postgres, ["v", "w"]) == [
        Candidate((1,), MismatchType.MISSING_IN_POSTGRES),
        Candidate((3,), MismatchType.DATA_MISMATCH, ("w",)),
        Candidate((4,), MismatchType.MISSING_IN_CASSANDRA),
    ]


def test_a_difference_is_in_flight_only_when_a_side_was_written_after_the_horizon() -> None:
    data = Candidate((1,), MismatchType.DATA_MISMATCH, ("v",))
    missing = Candidate((1,), MismatchType.MISSING_IN_POSTGRES)
    extra = Candidate((1,), MismatchType.MISSING_IN_CASSANDRA)
    horizon = 1_000
    assert in_flight(data, 1_500, 900, horizon)  # a write the mirror has not applied yet
    assert in_flight(data, 900, 1_100, horizon)  # the mirror's write is recent: Cassandra may have deleted it
    assert not in_flight(data, 900, 900, horizon)  # both old: drift
    assert not in_flight(data, 800, 700, horizon)
    assert in_flight(missing, 1_200, None, horizon)
    assert not in_flight(missing, 999, None, horizon)
    assert in_flight(extra, None, 1_100, horizon)
    assert not in_flight(extra, None, 500, horizon)
    assert drift_percent(5, 1000) == 0.5
    assert drift_percent(0, 0) == 0.0

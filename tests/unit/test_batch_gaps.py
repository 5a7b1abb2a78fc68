"""models.batch.contiguous_ends: where a partition's run of offsets in a batch breaks off (pure)."""

from __future__ import annotations

from models.batch import Record, contiguous_ends

TOPIC = "cdc.ks.t"


def records(partition: int, *offsets: int) -> list[Record]:
    return [Record(TOPIC, partition, o, None, None) for o in offsets]


def test_a_contiguous_run_from_the_stored_offset_has_no_gap_whatever_the_order_and_copies() -> None:
    batch = records(0, 5, 3, 4, 4, 1, 2)  # 1 and 2 are below the stored offset: already applied
    assert contiguous_ends(batch, {(TOPIC, 0): 3}) == {}


def test_a_run_starting_past_the_stored_offset_breaks_at_the_stored_offset() -> None:
    assert contiguous_ends(records(0, 6, 7), {(TOPIC, 0): 3}) == {(TOPIC, 0): (3, 6)}


def test_a_hole_inside_the_batch_breaks_the_run_at_the_first_missing_offset() -> None:
    batch = records(0, 3, 4, 9, 10) + records(1, 0, 1)
    assert contiguous_ends(batch, {(TOPIC, 0): 3, (TOPIC, 1): 0}) == {(TOPIC, 0): (5, 9)}


def test_without_a_stored_offset_the_run_starts_at_the_lowest_offset_held() -> None:
    assert contiguous_ends(records(0, 4, 5, 6), {}) == {}
    assert contiguous_ends(records(0, 4, 5, 8), {(TOPIC, 0): None}) == {(TOPIC, 0): (6, 8)}

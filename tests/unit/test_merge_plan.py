"""models.merge_plan: what a batch loads and how it folds into the loaded state."""

from __future__ import annotations

from app.testing import cql_table
from models.convergence import Cell, Marker, RowState
from models.merge_plan import needs, plan
from models.mutations import (
    Bound,
    BoundKind,
    CellWrite,
    Key,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
)

SHAPE = cql_table("ks", "t", {"p": "int"}, {"c": "int"}, {"a": "text"})


def test_needs_asks_full_partitions_only_for_partition_and_range_deletes() -> None:
    result = needs(SHAPE, [RowWrite((1, 1), 5), RowDelete((1, 2), 6), PartitionDelete((2,), 7)])
    assert result.row_keys == {(1, 1), (1, 2)}
    assert result.partitions == {(1,), (2,)}
    assert result.full_partitions == {(2,)}


def test_partition_delete_shadows_loaded_rows_and_later_older_writes() -> None:
    rows: dict[Key, RowState] = {(1, 1): RowState(cells={"a": Cell(5, "x")}, marker=Marker(5))}
    result = plan(
        SHAPE, [PartitionDelete((1,), 6), RowWrite((1, 2), 4, {"a": CellWrite("y")}, marker=True)], rows, {}
    )
    assert result.rows[(1, 1)].is_empty()
    assert (1, 2) not in result.rows  # the older write arrived after the tombstone: dropped
    assert result.tombstones == [PartitionDelete((1,), 6)]


def test_range_delete_touches_only_rows_in_range() -> None:
    rows: dict[Key, RowState] = {(1, c): RowState(cells={"a": Cell(5, c)}) for c in range(4)}
    result = plan(
        SHAPE,
        [RangeDelete((1,), Bound((1,), BoundKind.INCLUSIVE), Bound((2,), BoundKind.INCLUSIVE), 9)],
        rows,
        {},
    )
    assert set(result.rows) == {(1, 1), (1, 2)}

"""models.convergence: Cassandra's reconciliation rules for cells, markers, rows, ranges and read-backs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from models.convergence import (
    UNKNOWN,
    Cell,
    Marker,
    ReadBack,
    RowState,
    apply_readback,
    apply_write,
    cell_wins,
    in_range,
    marker_wins,
)
from models.mutations import Bound, BoundKind, CellWrite, RowWrite


def raw(value: object) -> bytes:
    return str(value).encode()


class TestCellWins:
    def test_higher_timestamp_wins(self) -> None:
        assert cell_wins(Cell(2, "a"), Cell(1, "z"), raw)
        assert not cell_wins(Cell(1, "z"), Cell(2, "a"), raw)

    def test_tombstone_beats_value_on_tie(self) -> None:
        assert cell_wins(Cell(5, None), Cell(5, "v"), raw)
        assert not cell_wins(Cell(5, "v"), Cell(5, None), raw)

    def test_expiring_beats_plain_value_and_tombstone_beats_expiring(self) -> None:
        assert cell_wins(Cell(5, "a", expires_at=10), Cell(5, "z"), raw)
        assert cell_wins(Cell(5, None), Cell(5, "a", expires_at=10), raw)

    def test_later_expiry_wins_between_expiring(self) -> None:
        assert cell_wins(Cell(5, "a", expires_at=20), Cell(5, "z", expires_at=10), raw)

    def test_greater_bytes_win_between_values(self) -> None:
        assert cell_wins(Cell(5, "b"), Cell(5, "a"), raw)
        assert not cell_wins(Cell(5, "a"), Cell(5, "b"), raw)
        assert not cell_wins(Cell(5, "a"), Cell(5, "a"), raw)

    def test_unknown_value_never_replaces_or_is_replaced_on_full_tie(self) -> None:
        assert not cell_wins(Cell(5, "a", 9), Cell(5, UNKNOWN, 9), raw)

    @given(st.lists(st.tuples(st.integers(0, 3), st.one_of(st.none(), st.sampled_from("abc"))), min_size=1))
    def test_winner_is_order_independent(self, cells: list[tuple[int, str | None]]) -> None:
        def fold(items: list[tuple[int, str | None]]) -> Cell:
            best = Cell(*items[0])
            for ts, value in items[1:]:
                if cell_wins(Cell(ts, value), best, raw):
                    best = Cell(ts, value)
            return best

        assert fold(cells) == fold(list(reversed(cells)))


def test_marker_tie_prefers_expiring_then_later_expiry() -> None:
    assert marker_wins(Marker(3, 100), Marker(3, None))
    assert marker_wins(Marker(3, 200), Marker(3, 100))
    assert not marker_wins(Marker(2, None), Marker(3, None))


def test_row_visibility_and_expiry() -> None:
    row = RowState(cells={"a": Cell(1, "x", expires_at=50)}, marker=Marker(1, expires_at=80))
    assert row.is_visible(40)
    assert row.next_expiry(40) == 50
    assert row.visible_values(["a"], 60) == {"a": None}
    assert row.is_visible(60)
    assert not row.is_visible(90)


def test_write_older_than_row_tombstone_is_dropped() -> None:
    row = RowState(deleted_ts=10)
    write = RowWrite(key=(1,), ts=10, cells={"a": CellWrite("x")}, marker=True)
    assert apply_write(row, write, None, lambda _c, v: raw(v)) is row
    newer = apply_write(
        row, RowWrite(key=(1,), ts=11, cells={"a": CellWrite("x")}), None, lambda _c, v: raw(v)
    )
    assert newer.cells["a"] == Cell(11, "x")


def test_range_bounds_follow_clustering_order() -> None:
    start, end = Bound((5,), BoundKind.EXCLUSIVE), Bound((2,), BoundKind.INCLUSIVE)
    desc = (True,)
    assert [c for c in range(8) if in_range((c,), start, end, desc)] == [2, 3, 4]
    asc_start, asc_end = Bound((2,), BoundKind.INCLUSIVE), Bound((5,), BoundKind.EXCLUSIVE)
    assert [c for c in range(8) if in_range((c,), asc_start, asc_end, (False,))] == [2, 3, 4]
    assert [
        c
        for c in range(3)
        if in_range((c, 9), Bound((), BoundKind.INCLUSIVE), Bound((1,), BoundKind.INCLUSIVE), (False, False))
    ] == [0, 1]


def test_readback_overrides_and_clears() -> None:
    row = RowState(cells={"tags": Cell(50, ["old"])})
    updated = apply_readback(row, {"tags": ReadBack(["a", "b"], 40)}, trigger_ts=45)
    assert updated.cells["tags"] == Cell(40, ["a", "b"])  # authoritative, even with an older element time
    cleared = apply_readback(row, {"tags": ReadBack(None, None)}, trigger_ts=60)
    assert cleared.cells["tags"] == Cell(60, None)
    assert "tags" not in apply_readback(RowState(), {"tags": ReadBack(None, None)}, 60).cells

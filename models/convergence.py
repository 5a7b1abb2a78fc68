"""Cassandra's reconciliation rules as pure functions over row state.

The sink keeps, for every row it has seen, the write timestamp (and expiry) of each cell, the row marker and
the row tombstone; partitions keep their partition and range tombstones. Merging is a join in a lattice
(per-cell maximum under Cassandra's total order, tombstones as maxima of timestamps), so the result does not
depend on event order, duplication or batching -- which is what lets replays and replica copies be harmless.

Invariant kept by every function here: a row state never holds a cell or marker that a tombstone covering
the row shadows (timestamp <= tombstone timestamp); writes arriving late are dropped on entry instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from models.mutations import Bound, BoundKind, Key, PartitionDelete, RangeDelete, RowWrite

OrderBytes = Callable[[str, object], bytes]
"""Cassandra's serialized bytes of a column value, for the equal-timestamp tie rule."""


class _Unknown:
    """The value of an expired cell that is no longer stored (only its timestamps are)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: object = _Unknown()


class Cell(NamedTuple):
    """One stored cell (a NamedTuple, not a frozen dataclass: a batch builds tens of thousands of them, and
    construction costs about half as much)."""

    ts: int
    value: object  # None = tombstone
    expires_at: int | None = None

    @property
    def is_tombstone(self) -> bool:
        return self.value is None

    def is_live(self, now_us: int) -> bool:
        return self.value is not None and (self.expires_at is None or self.expires_at > now_us)


def cell_wins(new: Cell, old: Cell, order_bytes: Callable[[object], bytes]) -> bool:
    """Cassandra's ``Cells.reconcile`` for regular cells: does ``new`` replace ``old``?

    Higher timestamp wins. On equal timestamps a tombstone or expiring cell beats a plain value, a tombstone
    beats an expiring cell, the later expiry wins between expiring cells, and otherwise the greater value bytes.
    """
    if new.ts != old.ts:
        return new.ts > old.ts
    new_rank = (new.is_tombstone or new.expires_at is not None, new.is_tombstone, new.expires_at or 0)
    old_rank = (old.is_tombstone or old.expires_at is not None, old.is_tombstone, old.expires_at or 0)
    if new_rank != old_rank:
        return new_rank > old_rank
    if new.is_tombstone or new.value is UNKNOWN or old.value is UNKNOWN or new.value == old.value:
        # Equal rank with an unknown value happens only between expired cells: either reads as null.
        return False
    return order_bytes(new.value) > order_bytes(old.value)


@dataclass(frozen=True, slots=True)
class Marker:
    """The row marker written by INSERT (LivenessInfo)."""

    ts: int
    expires_at: int | None = None

    def is_live(self, now_us: int) -> bool:
        return self.expires_at is None or self.expires_at > now_us


def marker_wins(new: Marker, old: Marker) -> bool:
    if new.ts != old.ts:
        return new.ts > old.ts
    if (new.expires_at is None) != (old.expires_at is None):
        return new.expires_at is not None
    return (new.expires_at or 0) > (old.expires_at or 0)


@dataclass(frozen=True, slots=True)
class RowState:
    cells: Mapping[str, Cell] = field(default_factory=dict)
    marker: Marker | None = None
    deleted_ts: int | None = None
    """Row tombstone (DELETE of the full primary key)."""

    def is_visible(self, now_us: int) -> bool:
        if self.marker is not None and self.marker.is_live(now_us):
            return True
        return any(cell.is_live(now_us) for cell in self.cells.values())

    def visible_values(self, columns: Iterable[str], now_us: int) -> dict[str, object]:
        """The value of each of ``columns`` a reader sees at ``now_us`` (None: absent, deleted, expired, or
        a value the mirror does not hold), in the order of ``columns``."""
        values: dict[str, object] = {}
        for column in columns:
            cell = self.cells.get(column)
            live = cell is not None and cell.is_live(now_us) and cell.value is not UNKNOWN
            values[column] = cell.value if live else None  # type: ignore[union-attr]
        return values

    def next_expiry(self, now_us: int) -> int | None:
        """The earliest future expiry among live cells and the marker (when a sweep must look again)."""
        times = [c.expires_at for c in self.cells.values() if c.expires_at is not None and c.is_live(now_us)]
        if self.marker is not None and self.marker.expires_at is not None and self.marker.is_live(now_us):
            times.append(self.marker.expires_at)
        return min(times, default=None)

    def is_empty(self) -> bool:
        return not self.cells and self.marker is None and self.deleted_ts is None


EMPTY_ROW = RowState()


def shadow(row: RowState, tombstone_ts: int) -> RowState:
    """Drop every cell and the marker written at or before ``tombstone_ts``."""
    cells = {name: cell for name, cell in row.cells.items() if cell.ts > tombstone_ts}
    marker = row.marker if row.marker is not None and row.marker.ts > tombstone_ts else None
    if len(cells) == len(row.cells) and marker is row.marker:
        return row
    return RowState(cells, marker, row.deleted_ts)


def apply_write(row: RowState, write: RowWrite, covering_ts: int | None, order_bytes: OrderBytes) -> RowState:
    """Merge an INSERT/UPDATE into ``row``; ``covering_ts`` is the newest tombstone covering the row."""
    limit = max(covering_ts or -1, row.deleted_ts or -1)
    if write.ts <= limit:
        return row
    cells = dict(row.cells)
    ts = write.ts
    for name, cw in write.cells.items():
        old = cells.get(name)
        if old is None or ts > old.ts:
            cells[name] = Cell(ts, cw.value, cw.expires_at)
        elif ts == old.ts:
            new = Cell(ts, cw.value, cw.expires_at)
            if cell_wins(new, old, lambda v, n=name: order_bytes(n, v)):  # type: ignore[misc]
                cells[name] = new
    marker = row.marker
    if write.marker:
        candidate = Marker(write.ts, write.marker_expires_at)
        if marker is None or marker_wins(candidate, marker):
            marker = candidate
    return RowState(cells, marker, row.deleted_ts)


def apply_row_delete(row: RowState, ts: int) -> RowState:
    if row.deleted_ts is not None and row.deleted_ts >= ts:
        return row
    shadowed = shadow(row, ts)
    return RowState(shadowed.cells, shadowed.marker, ts)


def compare_clustering(a: Key, b: Key, descending: tuple[bool, ...]) -> int:
    """Compare two clustering prefixes in the table's clustering order (-1, 0, 1 on the common length)."""
    for left, right, desc in zip(a, b, descending, strict=False):
        if left == right:
            continue
        result = -1 if left < right else 1  # type: ignore[operator]
        return -result if desc else result
    return 0


def in_range(clustering: Key, start: Bound, end: Bound, descending: tuple[bool, ...]) -> bool:
    """Is the row with this clustering inside the range tombstone's bounds (in clustering order)?"""
    if start.prefix:
        c = compare_clustering(clustering, start.prefix, descending)
        if c < 0 or (c == 0 and start.kind is BoundKind.EXCLUSIVE):
            return False
    if end.prefix:
        c = compare_clustering(clustering, end.prefix, descending)
        if c > 0 or (c == 0 and end.kind is BoundKind.EXCLUSIVE):
            return False
    return True


@dataclass(frozen=True, slots=True)
class PartitionTombstones:
    partition_ts: int | None = None
    ranges: tuple[RangeDelete, ...] = ()

    def covering_ts(self, clustering: Key, descending: tuple[bool, ...]) -> int | None:
        times = [r.ts for r in self.ranges if in_range(clustering, r.start, r.end, descending)]
        if self.partition_ts is not None:
            times.append(self.partition_ts)
        return max(times, default=None)

    def add(self, mutation: PartitionDelete | RangeDelete) -> PartitionTombstones:
        if isinstance(mutation, PartitionDelete):
            if self.partition_ts is not None and self.partition_ts >= mutation.ts:
                return self
            return replace(self, partition_ts=mutation.ts)
        if mutation in self.ranges:
            return self
        return replace(self, ranges=(*self.ranges, mutation))


NO_TOMBSTONES = PartitionTombstones()


@dataclass(frozen=True, slots=True)
class ReadBack:
    """A non-frozen collection as Cassandra returned it: the value and its newest element write time."""

    value: object
    newest_ts: int | None
    expires_at: int | None = None


def apply_readback(row: RowState, values: Mapping[str, ReadBack], trigger_ts: int) -> RowState:
    """Replace hint columns with what Cassandra holds now (authoritative, not last-write-wins).

    A read made later sees a newer state, so it overrides earlier reads. A present value takes its newest
    element's write time (newer than any tombstone Cassandra applied, so the invariant holds); an absent one
    becomes a tombstone at the newest timestamp known for the cell (or stays absent).
    """
    cells = dict(row.cells)
    for name, read in values.items():
        old = cells.get(name)
        if read.value is not None and read.newest_ts is not None:
            cells[name] = Cell(read.newest_ts, read.value, read.expires_at)
        elif old is not None:
            cells[name] = Cell(max(trigger_ts, old.ts), None)
    return RowState(cells, row.marker, row.deleted_ts)

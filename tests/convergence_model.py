"""A reference model of Cassandra's convergence rules, written independently of the sink.

It keeps every mutation ever seen and answers "what would ``SELECT *`` show at time ``now``" by brute force:
for each row, the newest covering deletion, then per column the winning cell among the writes that survive it.

The tie rules are transcribed from Cassandra's own reconciliation (``org.apache.cassandra.db.rows.Cells``,
``reconcile`` -> ``resolveRegular``, Cassandra 4.0+/5.0, CASSANDRA-14592), not from :mod:`models.convergence`:

1. the higher timestamp wins;
2. on equal timestamps, a cell with a ``localDeletionTime`` (a tombstone or an expiring cell) beats a live
   cell ("tombstones always win reconciliation with live cells of the same timestamp"; expiring cells are
   treated like tombstones there);
3. between a tombstone and an expiring cell, the tombstone wins ("we still prefer tombstones over expiring
   cells");
4. between two expiring cells (or two tombstones), the greater ``localDeletionTime`` wins -- for an expiring
   cell that is its expiry, in whole seconds;
5. otherwise the greater value bytes (``compareValues``) win.

Row markers follow ``LivenessInfo.supersedes``: the higher timestamp wins; on equal timestamps, when both or
neither expire the later expiration wins, else the expiring one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import reduce
from typing import Any, NamedTuple

from models.mutations import (
    BoundKind,
    Key,
    Mutation,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
)


class _Cell(NamedTuple):
    """One written cell as Cassandra stores it: timestamp, value (None = tombstone), expiry (µs) if any."""

    ts: int
    value: object
    expires_at: int | None

    @property
    def tombstone(self) -> bool:
        return self.value is None

    @property
    def local_deletion_time(self) -> int | None:
        """Cassandra's ``localDeletionTime`` in seconds for an expiring cell; ``None`` for a live cell.

        A tombstone's is the (unmodelled) time of the deletion; only whether it has one matters here."""
        if self.tombstone:
            return 0
        return None if self.expires_at is None else self.expires_at // 1_000_000


def reconcile(left: _Cell, right: _Cell, value_bytes: Callable[[object], bytes]) -> _Cell:
    """``Cells.resolveRegular``: the cell Cassandra keeps of two versions of one cell (rules 1-5 above)."""
    if left.ts != right.ts:
        return left if left.ts > right.ts else right
    left_ldt, right_ldt = left.local_deletion_time, right.local_deletion_time
    if left_ldt is None and right_ldt is None:  # two live cells
        return left if value_bytes(left.value) >= value_bytes(right.value) else right
    if left_ldt is None or right_ldt is None:  # exactly one is a tombstone or expiring
        return right if left_ldt is None else left
    if left.tombstone != right.tombstone:
        return left if left.tombstone else right
    if left.tombstone:  # two tombstones: no value to compare, either one reads as null
        return left
    if left_ldt != right_ldt:
        return left if left_ldt > right_ldt else right
    return left if value_bytes(left.value) >= value_bytes(right.value) else right


def _marker_supersedes(new: tuple[int, int | None], old: tuple[int, int | None]) -> bool:
    """``LivenessInfo.supersedes`` for two row markers ``(timestamp, expiry or None)``."""
    (new_ts, new_exp), (old_ts, old_exp) = new, old
    if new_ts != old_ts:
        return new_ts > old_ts
    if (new_exp is None) == (old_exp is None):
        return (new_exp or 0) > (old_exp or 0)
    return new_exp is not None


def _cmp(a: Any, b: Any, desc: bool) -> int:
    """Compare two clustering values of one column (any type CQL orders)."""
    result = int(a > b) - int(a < b)
    return -result if desc else result


def _covered(clustering: Key, m: RangeDelete, descending: tuple[bool, ...]) -> bool:
    def compare(prefix: Key) -> int:
        for x, y, d in zip(clustering, prefix, descending, strict=False):
            c = _cmp(x, y, d)
            if c:
                return c
        return 0

    if m.start.prefix:
        c = compare(m.start.prefix)
        if c < 0 or (c == 0 and m.start.kind is BoundKind.EXCLUSIVE):
            return False
    if m.end.prefix:
        c = compare(m.end.prefix)
        if c > 0 or (c == 0 and m.end.kind is BoundKind.EXCLUSIVE):
            return False
    return True


def _column_value(
    survivors: list[RowWrite], column: str, value_bytes: Callable[[str, object], bytes], now_us: int
) -> tuple[bool, object]:
    """``(live, value shown)`` of one column: the reconciled winner of every surviving write to it."""
    versions = [
        _Cell(w.ts, w.cells[column].value, w.cells[column].expires_at) for w in survivors if column in w.cells
    ]
    if not versions:
        return False, None

    def as_bytes(value: object) -> bytes:
        return value_bytes(column, value)

    winner = reduce(lambda a, b: reconcile(a, b, as_bytes), versions)
    alive = not winner.tombstone and (winner.expires_at is None or winner.expires_at > now_us)
    return alive, winner.value if alive else None


def expected_rows(
    mutations: Iterable[Mutation],
    partition_len: int,
    columns: tuple[str, ...],
    descending: tuple[bool, ...],
    value_bytes: Callable[[str, object], bytes],
    now_us: int,
) -> dict[Key, dict[str, object]]:
    ms = list(mutations)
    writes = [m for m in ms if isinstance(m, RowWrite)]
    result: dict[Key, dict[str, object]] = {}
    for key in {w.key for w in writes}:
        part, clustering = key[:partition_len], key[partition_len:]
        deletions = [m.ts for m in ms if isinstance(m, RowDelete) and m.key == key]
        deletions += [m.ts for m in ms if isinstance(m, PartitionDelete) and m.partition == part]
        deletions += [
            m.ts
            for m in ms
            if isinstance(m, RangeDelete) and m.partition == part and _covered(clustering, m, descending)
        ]
        floor = max(deletions, default=-1)
        survivors = [w for w in writes if w.key == key and w.ts > floor]
        row: dict[str, object] = {}
        live = False
        for column in columns:
            alive, row[column] = _column_value(survivors, column, value_bytes, now_us)
            live = live or alive
        markers = [(w.ts, w.marker_expires_at) for w in survivors if w.marker]
        if markers:
            _, exp = reduce(lambda a, b: b if _marker_supersedes(b, a) else a, markers)
            live = live or exp is None or exp > now_us
        if live:
            result[key] = row
    return result

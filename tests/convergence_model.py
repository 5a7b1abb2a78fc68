"""A reference model of Cassandra's convergence rules, written independently of the sink.

It keeps every mutation ever seen and answers "what would ``SELECT *`` show at time ``now``" by brute force:
for each row, the newest covering deletion, then per column the winning cell among the writes that survive it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from models.mutations import (
    BoundKind,
    CellWrite,
    Key,
    Mutation,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
)


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
            candidates = [(w.ts, w.cells[column]) for w in survivors if column in w.cells]
            if not candidates:
                row[column] = None
                continue

            def rank(item: tuple[int, CellWrite], column: str = column) -> tuple[int, bool, bool, int, bytes]:
                ts, cw = item
                tomb = cw.value is None
                exp = cw.expires_at
                body = b"" if tomb else value_bytes(column, cw.value)
                return (ts, tomb or exp is not None, tomb, exp or 0, body)

            _, winner = max(candidates, key=rank)
            alive = winner.value is not None and (winner.expires_at is None or winner.expires_at > now_us)
            row[column] = winner.value if alive else None
            live = live or alive
        markers = [
            (w.ts, w.marker_expires_at is not None, w.marker_expires_at or 0) for w in survivors if w.marker
        ]
        if markers:
            _, _, exp = max(markers)
            live = live or exp == 0 or exp > now_us
        if live:
            result[key] = row
    return result

"""Row state <-> the columns that store it (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from models.convergence import UNKNOWN, Cell, Marker, PartitionTombstones, RowState
from models.keycodec import decode_key, encode_key
from models.mirror_spec import MirrorSpec
from models.mutations import Bound, BoundKind, Key, PartitionDelete, RangeDelete

STATE_COLUMNS: tuple[str, ...] = ("_cdc_cells", "_cdc_marker", "_cdc_marker_exp", "_cdc_deleted_ts")
"""The columns that store a row's state, shared by the mirror and the dead-row table, in this order."""
MIRROR_EXTRA: tuple[str, ...] = ("_cdc_expires_at", "_cdc_token")


def encode_cells(cells: Mapping[str, Cell]) -> dict[str, list[int | None]]:
    return {name: [c.ts, c.expires_at, 1 if c.is_tombstone else 0] for name, c in cells.items()}


def state_row(row: RowState) -> list[object]:
    """The :data:`STATE_COLUMNS` of ``row``, in order."""
    marker = row.marker
    return [
        encode_cells(row.cells),
        marker.ts if marker else None,
        marker.expires_at if marker else None,
        row.deleted_ts,
    ]


def mirror_columns(spec: MirrorSpec) -> list[str]:
    """The stored columns of a mirror row, in the order of :func:`mirror_row`."""
    return [
        *(c.name for c in spec.primary_key),
        *(c.name for c in spec.columns),
        *STATE_COLUMNS,
        *MIRROR_EXTRA,
    ]


def mirror_row(spec: MirrorSpec, key: Key, row: RowState, now_us: int) -> list[object]:
    """Every stored column of a visible row, in :func:`mirror_columns` order (one list, no dict per row)."""
    values: list[object] = list(key)
    values += row.visible_values((c.name for c in spec.columns), now_us).values()
    values += state_row(row)
    values.append(row.next_expiry(now_us))
    values.append(spec.token_of(key[: len(spec.partition_key)]))
    return values


RowReader = Callable[[Sequence[Any]], tuple[Key, RowState]]


def row_reader(spec: MirrorSpec, columns: Sequence[str]) -> RowReader:
    """Decodes a stored mirror or dead-row record (a tuple whose fields are ``columns``: the primary key,
    any value columns, the state columns) back to ``(key, state)``."""
    at = {name: i for i, name in enumerate(columns)}
    key_at = [at[c.name] for c in spec.primary_key]
    value_at = {c.name: at[c.name] for c in spec.columns if c.name in at}
    cells_at, marker_at, marker_exp_at, deleted_at = (at[c] for c in STATE_COLUMNS)

    def read(record: Sequence[Any]) -> tuple[Key, RowState]:
        marker_ts = record[marker_at]
        marker = None if marker_ts is None else Marker(marker_ts, record[marker_exp_at])
        cells: dict[str, Cell] = {}
        for name, (ts, expires_at, tomb) in (record[cells_at] or {}).items():
            if tomb:
                value: object = None
            else:
                i = value_at.get(name)
                stored = None if i is None else record[i]
                value = UNKNOWN if stored is None else stored
            cells[name] = Cell(int(ts or 0), value, expires_at)
        return tuple(record[i] for i in key_at), RowState(cells, marker, record[deleted_at])

    return read


def encode_range(m: RangeDelete) -> dict[str, object]:
    return {
        "start": {"prefix": encode_key(m.start.prefix), "kind": m.start.kind.value},
        "end": {"prefix": encode_key(m.end.prefix), "kind": m.end.kind.value},
    }


def decode_tombstone(
    partition: Key, kind: str, ts: int, data: Mapping[str, Any] | None
) -> PartitionDelete | RangeDelete:
    if kind == "partition" or data is None:
        return PartitionDelete(partition, ts)
    start, end = data["start"], data["end"]
    return RangeDelete(
        partition,
        Bound(decode_key(start["prefix"]), BoundKind(start["kind"])),
        Bound(decode_key(end["prefix"]), BoundKind(end["kind"])),
        ts,
    )


def fold_tombstones(items: list[tuple[Key, PartitionDelete | RangeDelete]]) -> dict[Key, PartitionTombstones]:
    result: dict[Key, PartitionTombstones] = {}
    for partition, tombstone in items:
        result[partition] = result.get(partition, PartitionTombstones()).add(tombstone)
    return result

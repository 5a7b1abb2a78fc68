"""Row state <-> the columns that store it (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.convergence import UNKNOWN, Cell, Marker, PartitionTombstones, RowState
from models.keycodec import decode_key, encode_key
from models.mirror_spec import MirrorSpec
from models.mutations import Bound, BoundKind, Key, PartitionDelete, RangeDelete


def encode_cells(cells: Mapping[str, Cell]) -> dict[str, list[int | None]]:
    return {name: [c.ts, c.expires_at, 1 if c.is_tombstone else 0] for name, c in cells.items()}


def decode_cells(data: Mapping[str, list[int | None]], values: Mapping[str, object]) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}
    for name, (ts, expires_at, tomb) in data.items():
        if tomb:
            value: object = None
        else:
            stored = values.get(name)
            value = UNKNOWN if stored is None else stored
        cells[name] = Cell(int(ts or 0), value, expires_at)
    return cells


def state_values(row: RowState) -> dict[str, object]:
    """The ``_cdc_`` state columns shared by the mirror and the dead-row table."""
    return {
        "_cdc_cells": encode_cells(row.cells),
        "_cdc_marker": row.marker.ts if row.marker else None,
        "_cdc_marker_exp": row.marker.expires_at if row.marker else None,
        "_cdc_deleted_ts": row.deleted_ts,
    }


def mirror_values(spec: MirrorSpec, key: Key, row: RowState, now_us: int) -> dict[str, object]:
    """Every stored column of a visible row, keyed by column name."""
    values: dict[str, object] = dict(zip((c.name for c in spec.primary_key), key, strict=True))
    values.update(row.visible_values((c.name for c in spec.columns), now_us))
    values.update(state_values(row))
    values["_cdc_expires_at"] = row.next_expiry(now_us)
    values["_cdc_token"] = spec.token_of(key[: len(spec.partition_key)])
    return values


def decode_row(spec: MirrorSpec, record: Mapping[str, Any]) -> tuple[Key, RowState]:
    """A stored mirror or dead-row record back to ``(key, state)``."""
    key = tuple(record[c.name] for c in spec.primary_key)
    marker = None
    if record["_cdc_marker"] is not None:
        marker = Marker(record["_cdc_marker"], record["_cdc_marker_exp"])
    cells = decode_cells(record["_cdc_cells"] or {}, record)
    return key, RowState(cells=cells, marker=marker, deleted_ts=record["_cdc_deleted_ts"])


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

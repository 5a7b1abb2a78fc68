"""A batch of backfilled rows through the stream's apply path, with its collections served from the scan
where that is exact.

The stream reads a non-frozen collection back from Cassandra under the partition's lock, so the last read
applied is the newest. A backfilled row's collection was read earlier, when its page was scanned: applying it
would override a newer read the stream has applied since. It is exact only for a row the mirror holds
nothing of (no row state, no partition or range tombstone) when the batch takes its locks: the stream has
applied nothing of that row yet, and what it applies later it reads back later. Every other row's
collections are read back from Cassandra now, as the stream would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.sink.ports import CollectionReader
from models.backfill import ScannedRow
from models.convergence import PartitionTombstones, ReadBack, RowState
from models.mutations import Key
from models.table_schema import TableSchema


class ScannedCollections:
    """The loaded-state hook and the collection reader of one backfill batch (:meth:`Applier.apply_rows`)."""

    def __init__(self, schema: TableSchema, rows: Sequence[ScannedRow], cassandra: CollectionReader) -> None:
        self.schema = schema
        self.scanned: dict[Key, dict[str, ReadBack]] = {r.key: r.collections for r in rows}
        self.cassandra = cassandra
        self.known: set[Key] = set()
        """Rows the mirror held state of when the batch loaded them (their collections are read again)."""
        self.read_again = 0

    def adjust(
        self, rows: dict[Key, RowState], tombstones: Mapping[Key, PartitionTombstones]
    ) -> dict[Key, RowState]:
        partitions = {p for p, t in tombstones.items() if t.partition_ts is not None or t.ranges}
        self.known = set(rows) | {k for k in self.scanned if self.schema.partition_of(k) in partitions}
        return rows

    def read(
        self, schema: TableSchema, keys: Sequence[Key], columns: Sequence[str] | None = None
    ) -> dict[Key, dict[str, ReadBack]]:
        if columns is not None:  # a tie between transformed values: only Cassandra knows
            return self.cassandra.read(schema, keys, columns)
        hints = schema.hint_columns
        fresh = [k for k in keys if k in self.scanned and k not in self.known]
        again = [k for k in keys if k not in self.scanned or k in self.known]
        found = {k: {c: self.scanned[k].get(c, ReadBack(None, None)) for c in hints} for k in fresh}
        if again:
            self.read_again += len(again)
            found.update(self.cassandra.read(schema, again))
        return found

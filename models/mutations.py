"""Typed mutations: what a Cassandra change means, independent of how it was encoded.

A decoded Debezium event becomes exactly one of these. Keys and values are already mapped to the Python
values written to PostgreSQL (see :mod:`models.cql_types`). Timestamps are Cassandra write timestamps in
microseconds; expiry times (``expires_at``) are microseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple, TypeAlias

Key: TypeAlias = tuple[object, ...]
"""Primary-key values in schema order (partition key columns, then clustering columns)."""


class CellWrite(NamedTuple):
    """One regular column written by a mutation: a value, or a tombstone when ``value`` is None (a
    NamedTuple: cheaper to build than a frozen dataclass, and an event has one per column)."""

    value: object
    expires_at: int | None = None

    @property
    def is_tombstone(self) -> bool:
        return self.value is None


@dataclass(frozen=True, slots=True)
class RowWrite:
    """INSERT (``marker=True``: also writes the row marker) or UPDATE of some cells of one row."""

    key: Key
    ts: int
    cells: dict[str, CellWrite] = field(default_factory=dict)
    marker: bool = False
    marker_expires_at: int | None = None
    hint_columns: frozenset[str] = frozenset()
    """Columns whose event value is only a hint (non-frozen collections): read back from Cassandra."""


@dataclass(frozen=True, slots=True)
class RowDelete:
    key: Key
    ts: int


@dataclass(frozen=True, slots=True)
class PartitionDelete:
    partition: Key
    ts: int


class BoundKind(Enum):
    INCLUSIVE = "incl"
    EXCLUSIVE = "excl"


@dataclass(frozen=True, slots=True)
class Bound:
    """A clustering prefix bound; an empty prefix means unbounded on that side."""

    prefix: Key
    kind: BoundKind


@dataclass(frozen=True, slots=True)
class RangeDelete:
    partition: Key
    start: Bound
    end: Bound
    ts: int


Mutation: TypeAlias = RowWrite | RowDelete | PartitionDelete | RangeDelete

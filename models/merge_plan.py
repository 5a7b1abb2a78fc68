"""Plan the effect of one batch of mutations on one table: which rows change, and to what state.

Pure: the caller loads the current state of the rows and partitions the batch touches (:func:`needs` says
which), calls :func:`plan`, and writes the returned row states and new tombstones back in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from models.convergence import (
    EMPTY_ROW,
    NO_TOMBSTONES,
    OrderBytes,
    PartitionTombstones,
    RowState,
    apply_row_delete,
    apply_write,
    in_range,
    shadow,
)
from models.mutations import Key, Mutation, PartitionDelete, RangeDelete, RowDelete, RowWrite
from models.table_schema import TableSchema


@dataclass(frozen=True)
class Needs:
    """The state a batch must load: these rows, and every known row of ``full_partitions``."""

    row_keys: frozenset[Key]
    partitions: frozenset[Key]
    full_partitions: frozenset[Key]


def needs(shape: TableSchema, mutations: Iterable[Mutation]) -> Needs:
    rows: set[Key] = set()
    partitions: set[Key] = set()
    full: set[Key] = set()
    for m in mutations:
        if isinstance(m, RowWrite | RowDelete):
            rows.add(m.key)
            partitions.add(shape.partition_of(m.key))
        else:
            partitions.add(m.partition)
            full.add(m.partition)
    return Needs(frozenset(rows), frozenset(partitions), frozenset(full))


@dataclass
class Plan:
    rows: dict[Key, RowState] = field(default_factory=dict)
    """The new state of every row the batch changed (possibly empty or invisible)."""
    tombstones: list[PartitionDelete | RangeDelete] = field(default_factory=list)
    """Partition and range tombstones that are new (to remember for the grace period)."""
    ties: dict[Key, set[str]] = field(default_factory=dict)
    """Cells of ``opaque`` columns where two different values met at the same write time: the values
    (transformed) cannot say which Cassandra kept, so the caller reads those cells back."""


class _Fold:
    """The running state of one :func:`plan`: rows by key, their partitions, and the partitions' tombstones."""

    def __init__(
        self,
        shape: TableSchema,
        rows: Mapping[Key, RowState],
        tombstones: Mapping[Key, PartitionTombstones],
        opaque: frozenset[str] = frozenset(),
    ) -> None:
        self.shape = shape
        self.opaque = opaque
        self.ties: dict[Key, set[str]] = {}
        self.order: OrderBytes = shape.order_bytes if not opaque else self._order
        self.writing: Key = ()
        """The key of the write being merged (where :meth:`_order` records a tie)."""
        self.state = dict(rows)
        self.parts = dict(tombstones)
        self.members: dict[Key, set[Key]] = defaultdict(set)
        for key in self.state:
            self.members[shape.partition_of(key)].add(key)
        self.changed: set[Key] = set()
        self.new_tombstones: list[PartitionDelete | RangeDelete] = []

    def covering(self, key: Key) -> int | None:
        shape = self.shape
        found = self.parts.get(shape.partition_of(key))
        if found is None:  # the common case: no partition or range tombstone
            return None
        return found.covering_ts(shape.clustering_of(key), shape.descending)

    def row(self, m: RowWrite | RowDelete) -> None:
        old = self.state.get(m.key, EMPTY_ROW)
        if isinstance(m, RowWrite):
            self.writing = m.key
            new = apply_write(old, m, self.covering(m.key), self.order)
        else:
            new = apply_row_delete(old, m.ts)
        if new is not old:
            self.state[m.key] = new
            self.members[self.shape.partition_of(m.key)].add(m.key)
            self.changed.add(m.key)

    def _order(self, column: str, value: object) -> bytes:
        """The tie rule's bytes, recording a tie in an opaque column (and ordering it by the transformed
        value's text meanwhile, so the interim result does not depend on event order)."""
        if column not in self.opaque:
            return self.shape.order_bytes(column, value)
        self.ties.setdefault(self.writing, set()).add(column)
        return repr(value).encode()

    def tombstone(self, m: PartitionDelete | RangeDelete) -> None:
        before = self.parts.get(m.partition, NO_TOMBSTONES)
        after = before.add(m)
        if after is before:
            return
        self.parts[m.partition] = after
        self.new_tombstones.append(m)
        for key in self.members[m.partition]:
            if isinstance(m, RangeDelete) and not in_range(
                self.shape.clustering_of(key), m.start, m.end, self.shape.descending
            ):
                continue
            shadowed = shadow(self.state[key], m.ts)
            if shadowed is not self.state[key]:
                self.state[key] = shadowed
                self.changed.add(key)


def plan(
    shape: TableSchema,
    mutations: Sequence[Mutation],
    rows: Mapping[Key, RowState],
    tombstones: Mapping[Key, PartitionTombstones],
    opaque: frozenset[str] = frozenset(),
) -> Plan:
    """Fold ``mutations`` into the loaded state; the result is the same for any order of ``mutations``
    (up to ``ties`` in ``opaque`` columns, which the caller settles by reading them back)."""
    fold = _Fold(shape, rows, tombstones, opaque)
    for m in mutations:
        if isinstance(m, RowWrite | RowDelete):
            fold.row(m)
        else:
            fold.tombstone(m)
    return Plan(
        rows={key: fold.state[key] for key in fold.changed}, tombstones=fold.new_tombstones, ties=fold.ties
    )

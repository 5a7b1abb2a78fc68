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


def _no_order_bytes(_: str, value: object) -> bytes:
    return repr(value).encode()


@dataclass(frozen=True)
class TableShape:
    """What the merge needs to know about a table's schema."""

    partition_key: tuple[str, ...]
    clustering: tuple[str, ...] = ()
    descending: tuple[bool, ...] = ()
    columns: tuple[str, ...] = ()
    order_bytes: OrderBytes = _no_order_bytes

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.partition_key + self.clustering

    def partition_of(self, key: Key) -> Key:
        return key[: len(self.partition_key)]

    def clustering_of(self, key: Key) -> Key:
        return key[len(self.partition_key) :]


@dataclass(frozen=True)
class Needs:
    """The state a batch must load: these rows, and every known row of ``full_partitions``."""

    row_keys: frozenset[Key]
    partitions: frozenset[Key]
    full_partitions: frozenset[Key]


def needs(shape: TableShape, mutations: Iterable[Mutation]) -> Needs:
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


def plan(
    shape: TableShape,
    mutations: Sequence[Mutation],
    rows: Mapping[Key, RowState],
    tombstones: Mapping[Key, PartitionTombstones],
) -> Plan:
    """Fold ``mutations`` into the loaded state; the result is the same for any order of ``mutations``."""
    state = dict(rows)
    parts = dict(tombstones)
    members: dict[Key, set[Key]] = defaultdict(set)
    for key in state:
        members[shape.partition_of(key)].add(key)
    result = Plan()
    changed: set[Key] = set()

    def covering(key: Key) -> int | None:
        return parts.get(shape.partition_of(key), NO_TOMBSTONES).covering_ts(
            shape.clustering_of(key), shape.descending
        )

    for m in mutations:
        if isinstance(m, RowWrite | RowDelete):
            old = state.get(m.key, EMPTY_ROW)
            if isinstance(m, RowWrite):
                new = apply_write(old, m, covering(m.key), shape.order_bytes)
            else:
                new = apply_row_delete(old, m.ts)
            if new is not old:
                state[m.key] = new
                members[shape.partition_of(m.key)].add(m.key)
                changed.add(m.key)
            continue
        before = parts.get(m.partition, NO_TOMBSTONES)
        after = before.add(m)
        if after is before:
            continue
        parts[m.partition] = after
        result.tombstones.append(m)
        for key in members[m.partition]:
            if isinstance(m, RangeDelete) and not in_range(
                shape.clustering_of(key), m.start, m.end, shape.descending
            ):
                continue
            shadowed = shadow(state[key], m.ts)
            if shadowed is not state[key]:
                state[key] = shadowed
                changed.add(key)
    result.rows = {key: state[key] for key in changed}
    return result

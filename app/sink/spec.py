"""The description of one mirror table, derived from the Cassandra schema and the configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from models.convergence import OrderBytes
from models.merge_plan import TableShape, _no_order_bytes
from models.mutations import Key


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    pg_type: str
    """A PostgreSQL type name produced by our own type mapping (never taken from input)."""


@dataclass(frozen=True)
class MirrorSpec:
    keyspace: str
    table: str
    schema: str
    """PostgreSQL schema of the mirror (default: the keyspace name)."""
    name: str
    """PostgreSQL table name of the mirror (default: the Cassandra table name)."""
    partition_key: tuple[ColumnSpec, ...]
    clustering: tuple[ColumnSpec, ...] = ()
    descending: tuple[bool, ...] = ()
    columns: tuple[ColumnSpec, ...] = ()
    order_bytes: OrderBytes = field(default=_no_order_bytes, compare=False)
    token_of: Callable[[Key], int | None] = field(default=lambda _: None, compare=False)
    """Murmur3 token of a partition key (stored as ``_cdc_token`` for reconciliation)."""

    @property
    def primary_key(self) -> tuple[ColumnSpec, ...]:
        return self.partition_key + self.clustering

    @property
    def dead_name(self) -> str:
        return f"_cdc_{self.name}_dead"

    @property
    def tombstones_name(self) -> str:
        return f"_cdc_{self.name}_tombstones"

    def shape(self) -> TableShape:
        return TableShape(
            partition_key=tuple(c.name for c in self.partition_key),
            clustering=tuple(c.name for c in self.clustering),
            descending=self.descending,
            columns=tuple(c.name for c in self.columns),
            order_bytes=self.order_bytes,
        )

"""Where and how a Cassandra table is mirrored in PostgreSQL, derived from its schema and the configuration.

A :class:`MirrorSpec` is a :class:`~models.table_schema.TableSchema` (the one description of a table's shape)
plus the PostgreSQL schema and table name of its mirror; column types come from the CQL type mapping, or from
the table's transform plan (:mod:`models.transforms`): a dropped column is absent, a masked or normalised one
has the type of its transformed value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from models.cql_types import pg_type
from models.mutations import Key
from models.table_schema import Column, TableSchema
from models.token import token_function
from models.transforms import TransformPlan


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    pg_type: str
    """A PostgreSQL type name produced by our own type mapping (never taken from input)."""


def _columns(columns: tuple[Column, ...]) -> tuple[ColumnSpec, ...]:
    return tuple(ColumnSpec(c.name, pg_type(c.type)) for c in columns)


@dataclass(frozen=True)
class MirrorSpec:
    source: TableSchema
    """The Cassandra table mirrored."""
    schema: str
    """PostgreSQL schema of the mirror (default: the keyspace name)."""
    name: str
    """PostgreSQL table name of the mirror (default: the Cassandra table name)."""
    transforms: TransformPlan | None = None
    """The table's transform plan (None: an exact copy)."""

    @property
    def keyspace(self) -> str:
        return self.source.keyspace

    @property
    def table(self) -> str:
        return self.source.table

    @cached_property
    def partition_key(self) -> tuple[ColumnSpec, ...]:
        return _columns(self.source.partition_key)

    @cached_property
    def clustering(self) -> tuple[ColumnSpec, ...]:
        return _columns(self.source.clustering)

    @cached_property
    def columns(self) -> tuple[ColumnSpec, ...]:
        """The mirrored regular columns: a dropped one left out, a transformed one with its new type."""
        plan = self.transforms
        if plan is None or plan.empty:
            return _columns(self.source.columns)
        types = plan.pg_types
        return tuple(
            ColumnSpec(c.name, types.get(c.name) or pg_type(c.type))
            for c in self.source.columns
            if c.name not in plan.dropped
        )

    @property
    def primary_key(self) -> tuple[ColumnSpec, ...]:
        return self.partition_key + self.clustering

    @property
    def dead_name(self) -> str:
        return f"_cdc_{self.name}_dead"

    @property
    def tombstones_name(self) -> str:
        return f"_cdc_{self.name}_tombstones"

    def token_of(self, partition: Key) -> int | None:
        """Murmur3 token of a partition key (stored as ``_cdc_token`` for reconciliation)."""
        return self._token(partition)

    @cached_property
    def _token(self) -> Callable[[Key], int | None]:
        return token_function(tuple(c.type for c in self.source.partition_key))


def spec_for(
    schema: TableSchema, target: str | None = None, transforms: TransformPlan | None = None
) -> MirrorSpec:
    """The mirror of ``ks.tbl``: ``"ks"."tbl"`` unless ``target`` (``"schema.name"``) says otherwise."""
    pg_schema, name = schema.keyspace, schema.table
    if target:
        pg_schema, _, name = target.rpartition(".")
        pg_schema = pg_schema or schema.keyspace
    return MirrorSpec(source=schema, schema=pg_schema, name=name, transforms=transforms)

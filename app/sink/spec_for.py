"""Derive a mirror table's description from a Cassandra table schema and the configuration (pure)."""

from __future__ import annotations

from functools import partial

from app.sink.spec import ColumnSpec, MirrorSpec
from models.cql_types import pg_type
from models.table_schema import Column, TableSchema
from models.token import partition_token


def _columns(columns: tuple[Column, ...]) -> tuple[ColumnSpec, ...]:
    return tuple(ColumnSpec(c.name, pg_type(c.type)) for c in columns)


def spec_for(schema: TableSchema, target: str | None = None) -> MirrorSpec:
    """The mirror of ``ks.tbl``: ``"ks"."tbl"`` unless ``target`` (``"schema.name"``) says otherwise."""
    pg_schema, name = schema.keyspace, schema.table
    if target:
        pg_schema, _, name = target.rpartition(".")
        pg_schema = pg_schema or schema.keyspace
    return MirrorSpec(
        keyspace=schema.keyspace,
        table=schema.table,
        schema=pg_schema,
        name=name,
        partition_key=_columns(schema.partition_key),
        clustering=_columns(schema.clustering),
        descending=schema.descending,
        columns=_columns(schema.columns),
        order_bytes=schema.order_bytes,
        token_of=partial(partition_token, tuple(c.type for c in schema.partition_key)),
    )

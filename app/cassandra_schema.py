"""Cassandra table schemas from cassandra-driver metadata (the driver refreshes it on schema changes)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from models.cql_types import parse_cql_type
from models.errors import UnknownTable
from models.table_schema import Column, TableSchema


def _udts(keyspace_meta: Any) -> dict[str, list[tuple[str, str]]]:
    return {
        name: list(zip(udt.field_names, udt.field_types, strict=True))
        for name, udt in keyspace_meta.user_types.items()
    }


def table_schema(cluster: Any, keyspace: str, table: str) -> TableSchema:
    """The schema of ``keyspace.table`` as the driver currently knows it; :class:`UnknownTable` if absent."""
    ks = cluster.metadata.keyspaces.get(keyspace)
    meta = ks.tables.get(table) if ks is not None else None
    if meta is None:
        raise UnknownTable(f"{keyspace}.{table} does not exist in Cassandra")
    udts = _udts(ks)
    keys = {c.name for c in (*meta.partition_key, *meta.clustering_key)}

    def column(c: Any) -> Column:
        return Column(c.name, parse_cql_type(c.cql_type, udts))

    return TableSchema(
        keyspace=keyspace,
        table=table,
        partition_key=tuple(column(c) for c in meta.partition_key),
        clustering=tuple(column(c) for c in meta.clustering_key),
        descending=tuple(bool(c.is_reversed) for c in meta.clustering_key),
        columns=tuple(column(c) for c in meta.columns.values() if c.name not in keys and not c.is_static),
        static=frozenset(c.name for c in meta.columns.values() if c.is_static),
    )


class SchemaUnavailable(ConnectionError):
    """Cassandra could not be asked for a table's schema now: transient, the batch waits and retries (an
    unanswered refresh must not turn into ``unknown_table``/``unknown_column`` dead letters)."""

    component = "cassandra"


def refresh_table(cluster: Any, keyspace: str, table: str, types: bool = False) -> TableSchema:
    """Ask the driver to re-read one table's schema (with ``types``, the keyspace's user types too), then
    return it (:class:`UnknownTable` if Cassandra says it does not exist; :class:`SchemaUnavailable` if the
    refresh got no answer)."""
    try:
        cluster.refresh_table_metadata(keyspace, table)
        ks = cluster.metadata.keyspaces.get(keyspace)
        for name in list(ks.user_types) if types and ks is not None else []:
            cluster.refresh_user_type_metadata(keyspace, name)
    except Exception as error:  # the driver raises DriverException when the refresh did not succeed
        raise SchemaUnavailable(f"refreshing the schema of {keyspace}.{table} failed: {error}") from error
    return table_schema(cluster, keyspace, table)


def table_id(session: Any, keyspace: str, table: str) -> str | None:
    """The table's id (a timeuuid: it changes when the table is dropped and created again), None if absent."""
    row = session.execute(
        "SELECT id FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s", (keyspace, table)
    ).one()
    return None if row is None else str(row[0])


def dropped_columns(session: Any, keyspace: str, table: str) -> frozenset[str]:
    """Columns dropped from the table (Cassandra keeps their drop time so their old data stays invisible)."""
    rows = session.execute(
        "SELECT column_name FROM system_schema.dropped_columns WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    )
    return frozenset(str(row[0]) for row in rows)


def table_schemas(cluster: Any, keyspace_patterns: Iterable[str]) -> dict[str, TableSchema]:
    """``ks.t`` -> schema of every table in the keyspaces matching ``keyspace_patterns`` (wildcards)."""
    patterns = list(keyspace_patterns)
    found: dict[str, TableSchema] = {}
    for keyspace, meta in cluster.metadata.keyspaces.items():
        if not any(fnmatch.fnmatchcase(keyspace, p) for p in patterns):
            continue
        for table in meta.tables:
            found[f"{keyspace}.{table}"] = table_schema(cluster, keyspace, table)
    return found

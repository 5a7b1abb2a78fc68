"""Row-by-row comparison of a Cassandra table with its PostgreSQL mirror.

Both sides are brought to the pipeline's canonical Python values (:func:`models.cql_types.from_driver` for
Cassandra; a light normalisation of what psycopg returns for PostgreSQL) and compared by primary key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from psycopg import Connection, sql

from models.cql_types import CqlType, JsonbValue, from_driver
from models.mirror_spec import MirrorSpec
from models.mutations import Key
from models.table_schema import TableSchema

Row = dict[str, object]


def normalise(t: CqlType, value: object) -> object:
    """A value from either side in a form that compares equal when the data is equal (pure)."""
    if isinstance(value, JsonbValue):
        return value.obj
    if t.name == "varint" and isinstance(value, Decimal):
        return int(value)
    return value


@dataclass
class TableDiff:
    table: str
    cassandra_rows: int = 0
    postgres_rows: int = 0
    missing: list[Key] = field(default_factory=list)
    """In Cassandra, not in PostgreSQL."""
    extra: list[Key] = field(default_factory=list)
    """In PostgreSQL, not in Cassandra."""
    different: dict[Key, dict[str, tuple[object, object]]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def summary(self) -> str:
        state = "EQUAL" if self.equal else "DIFFERENT"
        return (
            f"{self.table}: cassandra={self.cassandra_rows} postgres={self.postgres_rows} "
            f"missing={len(self.missing)} extra={len(self.extra)} different={len(self.different)} {state}"
        )


def diff_rows(
    table: str, schema: TableSchema, cassandra: Mapping[Key, Row], postgres: Mapping[Key, Row]
) -> TableDiff:
    """Compare two keyed row sets column by column (pure)."""
    diff = TableDiff(table, len(cassandra), len(postgres))
    diff.missing = sorted((k for k in cassandra if k not in postgres), key=repr)
    diff.extra = sorted((k for k in postgres if k not in cassandra), key=repr)
    for key in cassandra.keys() & postgres.keys():
        left, right = cassandra[key], postgres[key]
        cols = {
            c.name: (left.get(c.name), right.get(c.name))
            for c in schema.columns
            if normalise(c.type, left.get(c.name)) != normalise(c.type, right.get(c.name))
        }
        if cols:
            diff.different[key] = cols
    return diff


def _key_of(schema: TableSchema, row: Mapping[str, object]) -> Key:
    return tuple(normalise(c.type, row[c.name]) for c in (*schema.partition_key, *schema.clustering))


def cassandra_rows(session: Any, schema: TableSchema) -> dict[Key, Row]:
    names = [c.name for c in (*schema.partition_key, *schema.clustering, *schema.columns)]
    selected = ", ".join(f'"{n}"' for n in names)
    query = f'SELECT {selected} FROM "{schema.keyspace}"."{schema.table}"'
    rows: dict[Key, Row] = {}
    for record in session.execute(query):
        row = {
            c.name: from_driver(c.type, getattr(record, c.name))
            if getattr(record, c.name) is not None
            else None
            for c in (*schema.partition_key, *schema.clustering, *schema.columns)
        }
        rows[_key_of(schema, row)] = row
    return rows


def postgres_rows(conn: Connection[Any], schema: TableSchema, spec: MirrorSpec) -> dict[Key, Row]:
    names = [c.name for c in (*schema.partition_key, *schema.clustering, *schema.columns)]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(n) for n in names), sql.Identifier(spec.schema, spec.name)
    )
    rows: dict[Key, Row] = {}
    for record in conn.execute(query):
        row = dict(zip(names, record, strict=True))
        rows[_key_of(schema, row)] = row
    return rows


def compare_tables(
    session: Any, conn: Connection[Any], tables: Iterable[tuple[TableSchema, MirrorSpec]]
) -> list[TableDiff]:
    return [
        diff_rows(
            f"{schema.keyspace}.{schema.table}",
            schema,
            cassandra_rows(session, schema),
            postgres_rows(conn, schema, spec),
        )
        for schema, spec in tables
    ]

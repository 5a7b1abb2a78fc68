"""Reading one token range of a table on each side, streamed (paged in Cassandra, a server-side cursor in
PostgreSQL), as canonical rows (``app.compare``'s forms: the one encoding both sides share) with each row's
newest write time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from cassandra.metadata import protect_name
from psycopg import Connection, sql

from app.compare import canonical_cassandra, canonical_postgres, hashable
from app.cql import names, table_name
from models.cql_types import is_multicell
from models.mirror_spec import MirrorSpec
from models.reconcile import row_hash
from models.table_schema import Column, TableSchema
from models.token_ranges import TokenRange

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ScannedRow:
    key: Key
    """Canonical primary key (hashable)."""
    values: dict[str, Any]
    """Canonical value of every column (primary key included)."""
    ts: int | None
    """Newest write time of the row's cells (µs), None when unknown."""
    raw_key: tuple[Any, ...] = ()
    """The primary key as the side's client library returned it (to read the row again, or delete it)."""

    @property
    def hash(self) -> int:
        return row_hash(list(self.values.values()))


def _all(schema: TableSchema) -> tuple[Column, ...]:
    return (*schema.partition_key, *schema.clustering, *schema.columns)


def _key(schema: TableSchema, values: dict[str, Any]) -> Key:
    return tuple(hashable(values[c.name]) for c in (*schema.partition_key, *schema.clustering))


def _writetime(column: Column) -> str:
    fn = "MAXWRITETIME" if is_multicell(column.type) else "WRITETIME"
    return f"{fn}({protect_name(column.name)})"


def cassandra_query(schema: TableSchema) -> str:
    """The token-range scan: every column and each regular column's (max) write time."""
    pk = names(c.name for c in schema.partition_key)
    selected = [names(c.name for c in _all(schema)), *(_writetime(c) for c in schema.columns)]
    target = table_name(schema.keyspace, schema.table)
    return (
        f"SELECT {', '.join(selected)} FROM {target} "  # noqa: S608 (every name protected)
        f"WHERE token({pk}) > ? AND token({pk}) <= ?"
    )


def scan_cassandra(
    session: Any, statement: Any, schema: TableSchema, token_range: TokenRange, page_size: int = 5000
) -> Iterator[ScannedRow]:
    """The range's rows in Cassandra, page by page (``statement``: :func:`cassandra_query`, prepared)."""
    columns = _all(schema)
    width = len(columns)
    bound = statement.bind((token_range.start, token_range.end))
    bound.fetch_size = page_size
    for record in session.execute(bound):
        values = {
            c.name: canonical_cassandra(c.type, v) for c, v in zip(columns, record[:width], strict=True)
        }
        times = [t for t in record[width:] if t is not None]
        flat = [t for t in times if isinstance(t, int)]
        keys = len(schema.partition_key) + len(schema.clustering)
        yield ScannedRow(_key(schema, values), values, max(flat) if flat else None, tuple(record[:keys]))


def postgres_query(schema: TableSchema, spec: MirrorSpec) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in _all(schema))
    return sql.SQL("SELECT {}, _cdc_cells::text FROM {} WHERE _cdc_token > %s AND _cdc_token <= %s").format(
        columns, sql.Identifier(spec.schema, spec.name)
    )


def scan_postgres(
    conn: Connection[Any],
    schema: TableSchema,
    spec: MirrorSpec,
    token_range: TokenRange,
    page_size: int = 5000,
) -> Iterator[ScannedRow]:
    """The range's rows in the mirror, through a server-side cursor (memory stays bounded)."""
    columns = _all(schema)
    width = len(columns)
    with conn.cursor(name=f"cdc_reconcile_{id(token_range)}") as cur:
        cur.itersize = page_size
        cur.execute(postgres_query(schema, spec), (token_range.start, token_range.end))
        for record in cur:
            values = {
                c.name: canonical_postgres(c.type, v) for c, v in zip(columns, record[:width], strict=True)
            }
            keys = len(schema.partition_key) + len(schema.clustering)
            yield ScannedRow(_key(schema, values), values, _newest(record[width]), tuple(record[:keys]))


def _newest(cells_text: str | None) -> int | None:
    """The newest write time in a mirror row's ``_cdc_cells`` (``{"col": [ts, expires, tombstone]}``)."""
    if not cells_text:
        return None
    stamps = [v[0] for v in orjson.loads(cells_text).values() if isinstance(v, list) and v]
    return max(stamps) if stamps else None

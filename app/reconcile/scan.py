"""Reading one token range of a table on each side, streamed (paged in Cassandra, a server-side cursor in
PostgreSQL), as canonical rows (``app.compare``'s forms: the one encoding both sides share) with each row's
newest write time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from cassandra.metadata import protect_name
from psycopg import Connection, sql

from app.compare import canonical_cassandra, canonical_postgres, hashable
from app.cql import names, table_name
from models.cql_types import CqlType, is_multicell
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
    token: int | None = None
    """The partition's Murmur3 token."""

    @property
    def hash(self) -> int:
        return row_hash(list(self.values.values()))


Converter = Callable[[Any], Any]
_PLAIN = (int, str, bool)
"""Driver and psycopg values of these types are their own canonical form (int, text, boolean columns)."""


def converters(schema: TableSchema, side: str) -> list[Converter]:
    """Per column, value -> canonical form, decided once per table: plain values pass through, others go
    through ``app.compare``'s normaliser of that side (``"cassandra"`` or ``"postgres"``)."""
    canonical = canonical_cassandra if side == "cassandra" else canonical_postgres
    return [_converter(c.type, canonical) for c in _all(schema)]


def _converter(t: CqlType, canonical: Callable[[CqlType, Any], Any]) -> Converter:
    if t.name not in {"int", "bigint", "smallint", "tinyint", "counter", "text", "ascii", "boolean"}:
        return lambda v: canonical(t, v)

    def plain(v: Any) -> Any:
        return v if v is None or type(v) in _PLAIN else canonical(t, v)

    return plain


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
    selected = [names(c.name for c in _all(schema)), *(_writetime(c) for c in schema.columns), f"token({pk})"]
    target = table_name(schema.keyspace, schema.table)
    return (
        f"SELECT {', '.join(selected)} FROM {target} "  # noqa: S608 (every name protected)
        f"WHERE token({pk}) > ? AND token({pk}) <= ?"
    )


def scan_cassandra(
    session: Any,
    statement: Any,
    schema: TableSchema,
    convert: list[Converter],
    token_range: TokenRange,
    page_size: int = 5000,
    profile: Any = None,
) -> Iterator[ScannedRow]:
    """The range's rows in Cassandra, page by page (``statement``: :func:`cassandra_query`, prepared)."""
    columns = _all(schema)
    width, keys = len(columns), len(schema.partition_key) + len(schema.clustering)
    bound = statement.bind((token_range.start, token_range.end))
    bound.fetch_size = page_size
    rows = session.execute(bound) if profile is None else session.execute(bound, execution_profile=profile)
    for record in rows:
        values = {c.name: f(v) for c, f, v in zip(columns, convert, record[:width], strict=True)}
        times = [t for t in record[width:-1] if isinstance(t, int)]
        yield ScannedRow(
            _key(schema, values), values, max(times) if times else None, tuple(record[:keys]), record[-1]
        )


def count_query(schema: TableSchema) -> str:
    """A range's row count, counted by Cassandra (ROW_COUNT)."""
    pk = names(c.name for c in schema.partition_key)
    target = table_name(schema.keyspace, schema.table)
    return f"SELECT count(*) FROM {target} WHERE token({pk}) > ? AND token({pk}) <= ?"  # noqa: S608


def postgres_count(spec: MirrorSpec) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {} WHERE _cdc_token > %s AND _cdc_token <= %s").format(
        sql.Identifier(spec.schema, spec.name)
    )


def postgres_query(schema: TableSchema, spec: MirrorSpec) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in _all(schema))
    return sql.SQL(
        "SELECT {}, _cdc_cells::text, _cdc_token FROM {} WHERE _cdc_token > %s AND _cdc_token <= %s"
    ).format(columns, sql.Identifier(spec.schema, spec.name))


def scan_postgres(
    conn: Connection[Any],
    schema: TableSchema,
    spec: MirrorSpec,
    convert: list[Converter],
    token_range: TokenRange,
    page_size: int = 5000,
) -> Iterator[ScannedRow]:
    """The range's rows in the mirror, through a server-side cursor (memory stays bounded)."""
    columns = _all(schema)
    width, keys = len(columns), len(schema.partition_key) + len(schema.clustering)
    with conn.cursor(name=f"cdc_reconcile_{id(token_range)}") as cur:
        cur.itersize = page_size
        cur.execute(postgres_query(schema, spec), (token_range.start, token_range.end))
        for record in cur:
            values = {c.name: f(v) for c, f, v in zip(columns, convert, record[:width], strict=True)}
            yield ScannedRow(
                _key(schema, values), values, _newest(record[width]), tuple(record[:keys]), record[width + 1]
            )


def _newest(cells_text: str | None) -> int | None:
    """The newest write time in a mirror row's ``_cdc_cells`` (``{"col": [ts, expires, tombstone]}``)."""
    if not cells_text:
        return None
    stamps = [v[0] for v in orjson.loads(cells_text).values() if isinstance(v, list) and v]
    return max(stamps) if stamps else None

"""Reading one token range of a table on each side, streamed (paged in Cassandra, a server-side cursor in
PostgreSQL), as canonical rows (``app.compare``'s forms: the one encoding both sides share) with each row's
newest write time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
from cassandra.metadata import protect_name
from psycopg import Connection, sql

from app.compare import (
    canonical_cassandra,
    canonical_postgres,
    canonical_transformed,
    hashable,
    transformed_cassandra,
)
from app.cql import names, table_name
from models.cql_types import CqlType, is_multicell
from models.mirror_spec import MirrorSpec
from models.reconcile import row_hash
from models.table_schema import Column, TableSchema
from models.token_ranges import TokenRange
from models.transforms import TransformPlan

Key = tuple[Any, ...]


class ScannedRow:
    """One row as a scan read it. Only what a digest needs is computed eagerly (the canonical values and
    their hash); the key, the values by name and the write time are derived when a row is compared."""

    __slots__ = ("_stamps", "canonical", "columns", "keys", "raw_key", "token")

    def __init__(
        self,
        columns: tuple[str, ...],
        keys: int,
        canonical: list[Any],
        stamps: Any,
        raw_key: tuple[Any, ...] = (),
        token: int | None = None,
    ) -> None:
        self.columns, self.keys, self.canonical = columns, keys, canonical
        self._stamps = stamps
        """Cassandra: the write times selected; the mirror: its ``_cdc_cells`` text."""
        self.raw_key = raw_key
        """The primary key as the side's client library returned it (to read the row again, or delete it)."""
        self.token = token
        """The partition's Murmur3 token."""

    @property
    def hash(self) -> int:
        return row_hash(self.canonical)

    @property
    def key(self) -> Key:
        """Canonical primary key (hashable)."""
        return tuple(hashable(v) for v in self.canonical[: self.keys])

    @property
    def values(self) -> dict[str, Any]:
        """Canonical value of every column (primary key included), by name."""
        return dict(zip(self.columns, self.canonical, strict=True))

    @property
    def ts(self) -> int | None:
        """Newest write time of the row's cells (µs), None when unknown."""
        if isinstance(self._stamps, str) or self._stamps is None:
            return _newest(self._stamps)
        times = [t for t in self._stamps if isinstance(t, int)]
        return max(times) if times else None


Converter = Callable[[Any], Any]
_PLAIN = (int, str, bool)
"""Driver and psycopg values of these types are their own canonical form (int, text, boolean columns)."""


def converters(schema: TableSchema, side: str, transforms: TransformPlan | None = None) -> list[Converter]:
    """Per column, value -> canonical form, decided once per table: plain values pass through, others go
    through ``app.compare``'s normaliser of that side (``"cassandra"`` or ``"postgres"``). A transformed
    column (``transforms``) is transformed first on the Cassandra side, so a masked mirror reconciles."""
    canonical = canonical_cassandra if side == "cassandra" else canonical_postgres
    special: dict[str, Callable[[CqlType, Any], Any]] = {}
    if transforms is not None:
        changed = transformed_cassandra(transforms)
        special = changed if side == "cassandra" else {n: _postgres_transformed for n in changed}
    return [
        _converter(c.type, canonical) if c.name not in special else _bound(c.type, special[c.name])
        for c in _all(schema)
    ]


def _postgres_transformed(t: CqlType, value: Any) -> Any:
    return canonical_transformed(value)


def _bound(t: CqlType, fn: Callable[[CqlType, Any], Any]) -> Converter:
    return lambda v: fn(t, v)


def _converter(t: CqlType, canonical: Callable[[CqlType, Any], Any]) -> Converter:
    if t.name not in {"int", "bigint", "smallint", "tinyint", "counter", "text", "ascii", "boolean"}:
        return lambda v: canonical(t, v)

    def plain(v: Any) -> Any:
        return v if v is None or type(v) in _PLAIN else canonical(t, v)

    return plain


def _all(schema: TableSchema) -> tuple[Column, ...]:
    return (*schema.partition_key, *schema.clustering, *schema.columns)


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
    names = tuple(c.name for c in columns)
    for record in rows:
        canonical = [f(v) for f, v in zip(convert, record[:width], strict=True)]
        yield ScannedRow(names, keys, canonical, record[width:-1], tuple(record[:keys]), record[-1])


def count_query(schema: TableSchema) -> str:
    """A range's row count, counted by Cassandra (ROW_COUNT)."""
    pk = names(c.name for c in schema.partition_key)
    target = table_name(schema.keyspace, schema.table)
    return f"SELECT count(*) FROM {target} WHERE token({pk}) > ? AND token({pk}) <= ?"  # noqa: S608


def next_token_query(schema: TableSchema) -> str:
    """The first partition's token after a token (SAMPLE)."""
    pk = names(c.name for c in schema.partition_key)
    target = table_name(schema.keyspace, schema.table)
    return f"SELECT token({pk}) FROM {target} WHERE token({pk}) > ? LIMIT 1"  # noqa: S608


def postgres_next_token(spec: MirrorSpec) -> sql.Composed:
    return sql.SQL("SELECT min(_cdc_token) FROM {} WHERE _cdc_token > %s").format(
        sql.Identifier(spec.schema, spec.name)
    )


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
        names = tuple(c.name for c in columns)
        for record in cur:
            canonical = [f(v) for f, v in zip(convert, record[:width], strict=True)]
            yield ScannedRow(names, keys, canonical, record[width], tuple(record[:keys]), record[width + 1])


def _newest(cells_text: str | None) -> int | None:
    """The newest write time in a mirror row's ``_cdc_cells`` (``{"col": [ts, expires, tombstone]}``)."""
    if not cells_text:
        return None
    stamps = [v[0] for v in orjson.loads(cells_text).values() if isinstance(v, list) and v]
    return max(stamps) if stamps else None

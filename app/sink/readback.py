"""Reading cells back from Cassandra: non-frozen collections (the event only hints at their value), and the
cells of an equal-timestamp tie between transformed values (only Cassandra knows which original won)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from threading import Semaphore
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.metadata import protect_name
from cassandra.query import PreparedStatement, tuple_factory

from app.clock import now_us
from app.cql import key_condition, table_name
from models.convergence import ReadBack
from models.cql_types import from_driver, is_multicell
from models.mutations import Key
from models.table_schema import Column, TableSchema


def _driver_value(value: object) -> object:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return value


def _read_columns(schema: TableSchema, columns: Sequence[str] | None) -> list[Column]:
    wanted = schema.hint_columns if columns is None else frozenset(columns)
    return [c for c in schema.columns if c.name in wanted]


def select_statement(schema: TableSchema, columns: Sequence[str] | None = None) -> str:
    """``SELECT c, writetime(c), ttl(c) ... WHERE pk = ?`` for ``columns`` (default: the hint columns; a
    collection's TTL is not selected: its elements each have one), names protected."""
    parts = []
    for column in _read_columns(schema, columns):
        name = protect_name(column.name)
        parts.append(
            f"{name}, writetime({name})"
            if is_multicell(column.type)
            else f"{name}, writetime({name}), ttl({name})"
        )
    selected = ", ".join(parts)
    where = key_condition(c.name for c in (*schema.partition_key, *schema.clustering))
    target = table_name(schema.keyspace, schema.table)
    return f"SELECT {selected} FROM {target} WHERE {where}"  # noqa: S608 (every name protected)


class ReadBackReader:
    def __init__(self, session: Any, concurrency: int = 64, consistency: str = "LOCAL_QUORUM") -> None:
        self.session = session
        self.concurrency = concurrency
        # Plain tuples: the default named-tuple factory builds a class per response (~29 µs a row read).
        self._profile = session.execution_profile_clone_update(
            EXEC_PROFILE_DEFAULT,
            row_factory=tuple_factory,
            consistency_level=ConsistencyLevel.name_to_value[consistency],
        )
        self._prepared: dict[tuple[str, str, str], PreparedStatement] = {}

    def _statement(self, schema: TableSchema, columns: Sequence[str] | None) -> PreparedStatement:
        query = select_statement(schema, columns)
        cache_key = (schema.keyspace, schema.table, query)
        if cache_key not in self._prepared:
            self._prepared[cache_key] = self.session.prepare(query)
        return self._prepared[cache_key]

    def read(
        self, schema: TableSchema, keys: Sequence[Key], columns: Sequence[str] | None = None
    ) -> dict[Key, dict[str, ReadBack]]:
        """Current value and (newest element) write time of ``columns`` (default: every hint column) of each
        row in ``keys``, with a simple cell's expiry from its TTL."""
        statement = self._statement(schema, columns)
        gate = Semaphore(self.concurrency)
        futures = []
        for key in keys:
            gate.acquire()
            future = self.session.execute_async(
                statement, [_driver_value(v) for v in key], execution_profile=self._profile
            )
            future.add_callbacks(lambda _: gate.release(), lambda _: gate.release())
            futures.append((key, future))
        read = _read_columns(schema, columns)
        spans = _spans(read)
        result: dict[Key, dict[str, ReadBack]] = {}
        now = now_us()
        for key, future in futures:
            rows = future.result().current_rows
            row = rows[0] if rows else None
            result[key] = {
                column.name: _cell(column, row[start:end] if row is not None else None, now)
                for column, (start, end) in zip(read, spans, strict=True)
            }
        return result


def _spans(columns: Sequence[Column]) -> list[tuple[int, int]]:
    """Where each column's selected items are in a row: (value, writetime[, ttl])."""
    spans, at = [], 0
    for column in columns:
        width = 2 if is_multicell(column.type) else 3
        spans.append((at, at + width))
        at += width
    return spans


def _cell(column: Column, selected: Sequence[Any] | None, now: int) -> ReadBack:
    """One column's (value, writetime, ttl) as read, or None for a row Cassandra does not have."""
    if selected is None:
        return ReadBack(None, None)
    raw, times, ttl = (*selected, None)[:3]
    newest = max((t for t in times if t is not None), default=None) if isinstance(times, list) else times
    expires_at = now + int(ttl) * 1_000_000 if ttl else None
    return ReadBack(from_driver(column.type, raw) if raw is not None else None, newest, expires_at)

"""Reading non-frozen collections back from Cassandra: the event only hints at their value."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from threading import Semaphore
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.metadata import protect_name
from cassandra.query import PreparedStatement, tuple_factory

from app.cql import key_condition, table_name
from models.convergence import ReadBack
from models.cql_types import from_driver
from models.mutations import Key
from models.table_schema import TableSchema


def _driver_value(value: object) -> object:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return value


def select_statement(schema: TableSchema) -> str:
    """``SELECT c, writetime(c) ... WHERE pk = ?`` for the table's hint columns (names protected)."""
    hints = [protect_name(c.name) for c in schema.columns if c.name in schema.hint_columns]
    selected = ", ".join(f"{c}, writetime({c})" for c in hints)
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

    def _statement(self, schema: TableSchema) -> PreparedStatement:
        query = select_statement(schema)
        cache_key = (schema.keyspace, schema.table, query)
        if cache_key not in self._prepared:
            self._prepared[cache_key] = self.session.prepare(query)
        return self._prepared[cache_key]

    def read(self, schema: TableSchema, keys: Sequence[Key]) -> dict[Key, dict[str, ReadBack]]:
        """Current value and newest element write time of every hint column of each row in ``keys``."""
        statement = self._statement(schema)
        gate = Semaphore(self.concurrency)
        futures = []
        for key in keys:
            gate.acquire()
            future = self.session.execute_async(
                statement, [_driver_value(v) for v in key], execution_profile=self._profile
            )
            future.add_callbacks(lambda _: gate.release(), lambda _: gate.release())
            futures.append((key, future))
        hints = [c for c in schema.columns if c.name in schema.hint_columns]
        result: dict[Key, dict[str, ReadBack]] = {}
        for key, future in futures:
            rows = future.result().current_rows
            row = rows[0] if rows else None
            values: dict[str, ReadBack] = {}
            for i, column in enumerate(hints):
                raw = row[2 * i] if row is not None else None
                times = row[2 * i + 1] if row is not None else None
                newest = max((t for t in times if t is not None), default=None) if times else None
                values[column.name] = ReadBack(
                    from_driver(column.type, raw) if raw is not None else None, newest
                )
            result[key] = values
        return result

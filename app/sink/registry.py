"""Known tables: Cassandra schema + mirror store per table, created in PostgreSQL on first sight."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg_pool import ConnectionPool

from app.cassandra_schema import refresh_table, table_schema
from app.sink import ddl
from app.sink.ports import RowStore
from app.sink.store import MirrorStore
from models.errors import UnknownTable
from models.mirror_spec import spec_for
from models.table_schema import TableSchema


@dataclass(frozen=True)
class TableEntry:
    schema: TableSchema
    store: RowStore


class TableRegistry:
    def __init__(
        self, cluster: Any, pool: ConnectionPool[Any], targets: dict[str, str] | None = None
    ) -> None:
        self.cluster = cluster
        self.pool = pool
        self.targets = targets or {}
        self._entries: dict[tuple[str, str], TableEntry] = {}
        self._lock = threading.Lock()

    def resolve(self, keyspace: str, table: str) -> TableEntry:
        entry = self._entries.get((keyspace, table))
        if entry is not None:
            return entry
        with self._lock:
            try:
                schema = table_schema(self.cluster, keyspace, table)
            except UnknownTable:
                schema = refresh_table(self.cluster, keyspace, table)
            return self._install(schema)

    def refresh(self, keyspace: str, table: str) -> TableEntry:
        """Re-read the table's schema (after an unknown column) and add new columns to the mirror."""
        with self._lock:
            return self._install(refresh_table(self.cluster, keyspace, table))

    def known(self) -> list[TableEntry]:
        return list(self._entries.values())

    def _install(self, schema: TableSchema) -> TableEntry:
        spec = spec_for(schema, self.targets.get(f"{schema.keyspace}.{schema.table}"))
        store = MirrorStore(spec)
        with self.pool.connection() as conn:
            store.ensure(conn)
            for column in spec.columns:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        ddl.ident(spec.schema, spec.name), ddl.ident(column.name), sql.SQL(column.pg_type)
                    )
                )
        entry = TableEntry(schema, store)
        self._entries[(schema.keyspace, schema.table)] = entry
        return entry

"""Known tables: Cassandra schema + mirror store per table, kept in step with Cassandra's schema.

On first sight a table's mirror is created or brought up to date (:func:`app.sink.schema_sync.sync`);
afterwards the schema agent (:meth:`TableRegistry.check`, on a timer) and the decoding path (an unknown
column, a value that no longer fits) compare the cached schema with the driver's, which the driver keeps
current from Cassandra's schema-change events. A change the mirror cannot follow quarantines the table:
:meth:`quarantined` lists them, the applier holds their records in Kafka, and every check retries the
sync, so a resolution lifts it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg_pool import ConnectionPool

from app.cassandra_schema import dropped_columns, refresh_table, table_id, table_schema
from app.sink.failures import SystemicFault
from app.sink.ports import RowStore
from app.sink.schema_sync import SyncResult, record_dropped, sync
from app.sink.store import MirrorStore
from app.sink.transform_plans import store_plan
from models.errors import UnknownTable
from models.mirror_spec import MirrorSpec, spec_for
from models.schema_diff import DropPolicy
from models.table_schema import TableSchema
from models.transforms import NO_TRANSFORMS, Rules, TransformConfigError, TransformPlan, compile_plan

log = structlog.get_logger("cdc.schema")

TablePath = tuple[str, str]


REFRESH_INTERVAL_S = 2.0


class TableQuarantined(SystemicFault):
    """The table's schema changed in a way its mirror cannot follow; its events wait."""


@dataclass(frozen=True)
class TableEntry:
    schema: TableSchema
    store: RowStore
    transforms: TransformPlan = NO_TRANSFORMS
    """The table's compiled transform plan (:mod:`models.transforms`), applied to every value it mirrors."""


@dataclass(frozen=True)
class SchemaEvent:
    """A recorded schema version (for logs and metrics): table, version, action, detail."""

    path: TablePath
    version: int
    action: str
    detail: str


class TableRegistry:
    def __init__(
        self,
        cluster: Any,
        pool: ConnectionPool[Any],
        targets: dict[str, str] | None = None,
        drop_policies: dict[str, DropPolicy] | None = None,
        lock_timeout_ms: int = 2000,
        on_change: Callable[[SchemaEvent], None] | None = None,
        session: Any = None,
        transforms: Rules | None = None,
        hash_key: bytes = b"",
    ) -> None:
        self.transforms: Rules = transforms or {}
        """Transform rules (``transforms`` in the settings), compiled per table when it is installed."""
        self.hash_key = hash_key
        self.session = session
        """For what the driver's metadata lacks: a table's id (a new id means the table was dropped and
        created again) and its dropped columns; one query each. None: neither is known."""
        self._ids: dict[TablePath, str | None] = {}
        self.cluster = cluster
        self.pool = pool
        self.targets = targets or {}
        self.drop_policies = drop_policies or {}
        """Per table (``ks.tbl``, or ``*``): what a column dropped in Cassandra does to the mirror."""
        self.lock_timeout_ms = lock_timeout_ms
        self.on_change = on_change
        self._entries: dict[TablePath, TableEntry] = {}
        self._quarantined: dict[TablePath, str] = {}
        self._dropped: set[TablePath] = set()
        self._types_refreshed: dict[TablePath, float] = {}
        self._lock = threading.RLock()

    # -- lookups ------------------------------------------------------------------------------------------
    def resolve(self, keyspace: str, table: str) -> TableEntry:
        entry = self._entries.get((keyspace, table))
        if entry is not None:
            return entry
        with self._lock:
            entry = self._entries.get((keyspace, table))
            if entry is not None:
                return entry
            try:
                schema = self._schema(keyspace, table)
            except UnknownTable:
                refresh_table(self.cluster, keyspace, table)
                schema = self._schema(keyspace, table)
            return self._install(schema)

    def refresh(self, keyspace: str, table: str, types: bool = False) -> TableEntry:
        """Re-read the table's schema from Cassandra (after an unknown column; with ``types``, its user types
        too, after a value that no longer fits the cached type, e.g. a UDT field added before the driver
        heard of it) and bring the mirror in step. At most one such round trip per table every
        ``REFRESH_INTERVAL_S`` for types (a flood of bad values must not become a flood of schema reads)."""
        with self._lock:
            if types:
                now = time.monotonic()
                if now - self._types_refreshed.get((keyspace, table), -1e9) < REFRESH_INTERVAL_S:
                    return self.current(keyspace, table)
                self._types_refreshed[(keyspace, table)] = now
            refresh_table(self.cluster, keyspace, table, types=types)
            return self._install(self._schema(keyspace, table))

    def current(self, keyspace: str, table: str) -> TableEntry:
        """The entry for the driver's current schema of the table (no round trip: the driver follows
        Cassandra's schema-change events): the cached one if unchanged, else the mirror is synced first."""
        with self._lock:
            cached = self.resolve(keyspace, table)
            schema = self._schema(keyspace, table)
            return cached if schema == cached.schema else self._install(schema)

    def known(self) -> list[TableEntry]:
        return list(self._entries.values())

    def quarantined(self) -> dict[TablePath, str]:
        """Tables whose events must wait, and why."""
        return dict(self._quarantined)

    # -- the schema agent -----------------------------------------------------------------------------------
    def check(self) -> list[SchemaEvent]:
        """Compare every known (and quarantined) table with the driver's current schema; sync what changed,
        record drops, retry quarantined tables. Returns the versions recorded."""
        events: list[SchemaEvent] = []
        paths = sorted(set(self._entries) | set(self._quarantined))
        for path in paths:
            with self._lock:
                events.extend(self._check(path))
        return events

    def _check(self, path: TablePath) -> list[SchemaEvent]:
        try:
            current = self._schema(*path)
        except UnknownTable:
            return self._gone(path)
        entry = self._entries.get(path)
        self._dropped.discard(path)
        same_id = self.session is None or self._ids.get(path) == table_id(self.session, *path)
        if entry is not None and entry.schema == current and same_id and path not in self._quarantined:
            return []
        events: list[SchemaEvent] = []
        with contextlib.suppress(TableQuarantined):  # recorded and logged by _install
            self._install(current, events)
        return events

    def _gone(self, path: TablePath) -> list[SchemaEvent]:
        if path in self._dropped:
            return []
        self._dropped.add(path)
        entry = self._entries.get(path)
        if entry is None:
            return []
        spec = self._spec(entry.schema)
        with self.pool.connection() as conn:
            version = record_dropped(conn, spec)
        log.warning("table dropped in Cassandra; its mirror is kept", table=".".join(path))
        return [] if version is None else [self._note(path, version, "dropped", "mirror kept")]

    # -- installing -----------------------------------------------------------------------------------------
    def _schema(self, keyspace: str, table: str) -> TableSchema:
        """The driver's current schema of the table, with its dropped columns."""
        schema = table_schema(self.cluster, keyspace, table)
        if self.session is None:
            return schema
        return dataclasses.replace(
            schema, dropped=dropped_columns(self.session, keyspace, table) - set(schema.by_name)
        )

    def _spec(self, schema: TableSchema, plan: TransformPlan | None = None) -> MirrorSpec:
        return spec_for(schema, self.targets.get(f"{schema.keyspace}.{schema.table}"), plan)

    def _plan(self, schema: TableSchema) -> TransformPlan:
        """The table's transform plan; rules that no longer fit (e.g. a new column matched by a wildcard
        rule of the wrong type) quarantine the table, naming the rule."""
        if not self.transforms:
            return NO_TRANSFORMS
        try:
            return compile_plan(schema, self.transforms, self.hash_key)
        except TransformConfigError as error:
            path = (schema.keyspace, schema.table)
            self._quarantined[path] = str(error)
            self._entries.pop(path, None)
            log.error(
                "transform rule does not fit the table: quarantined", table=".".join(path), error=str(error)
            )
            raise TableQuarantined(f"{schema.keyspace}.{schema.table} quarantined: {error}") from None

    def _policy(self, schema: TableSchema) -> DropPolicy:
        name = f"{schema.keyspace}.{schema.table}"
        return self.drop_policies.get(name, self.drop_policies.get("*", "keep"))

    def _install(self, schema: TableSchema, events: list[SchemaEvent] | None = None) -> TableEntry:
        path = (schema.keyspace, schema.table)
        plan = self._plan(schema)
        spec = self._spec(schema, plan)
        current_id = table_id(self.session, *path) if self.session is not None else None
        with self.pool.connection() as conn, conn.transaction():
            result = sync(conn, spec, self._policy(schema), self.lock_timeout_ms, current_id)
            if result.quarantine is None:
                self._plan_stored(conn, spec, result)
        self._ids[path] = current_id
        event = self._report(path, result)
        if event is not None and events is not None:
            events.append(event)
        if result.quarantine is not None:
            self._quarantined[path] = result.quarantine
            self._entries.pop(path, None)
            raise TableQuarantined(f"{schema.keyspace}.{schema.table} quarantined: {result.quarantine}")
        if self._quarantined.pop(path, None) is not None:
            log.warning("quarantine lifted; the table's events apply again", table=".".join(path))
        # The store's temp tables are named after its columns: a new column set gets new temp tables.
        entry = TableEntry(schema, MirrorStore(spec), plan)
        self._entries[path] = entry
        return entry

    def _plan_stored(self, conn: Any, spec: MirrorSpec, result: SyncResult) -> None:
        """Record the plan's fingerprint with the mirror; a different one stored means the rules changed
        since rows were written (those keep the old rule until the mirror is rebuilt): logged and kept."""
        changed = store_plan(conn, spec, fresh=result.created)
        if changed is None:
            return
        log.warning(
            "transform rules changed since the mirror was written: rows written before keep the old rule "
            "until the mirror is rebuilt (README, Transforms)",
            table=f"{spec.keyspace}.{spec.table}",
            detail=changed,
        )

    def _report(self, path: TablePath, result: SyncResult) -> SchemaEvent | None:
        if result.version is None:
            return None
        if result.quarantine is not None:
            log.error(
                "schema change the mirror cannot follow: table quarantined, its events wait in Kafka "
                "(resolve with `cdc schema resolve`)",
                table=".".join(path),
                reason=result.quarantine,
            )
            return self._note(path, result.version, "quarantined", result.quarantine)
        log.info(
            "mirror schema in step",
            table=".".join(path),
            version=result.version,
            changes=[c.as_dict() for c in result.changes],
            ddl=result.statements,
        )
        return self._note(path, result.version, "synced", "; ".join(result.statements))

    def _note(self, path: TablePath, version: int, action: str, detail: str) -> SchemaEvent:
        event = SchemaEvent(path, version, action, detail)
        if self.on_change is not None:
            self.on_change(event)
        return event

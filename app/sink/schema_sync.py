"""Bringing a mirror in step with its Cassandra table's schema, with a history in ``_cdc_schema_metadata``.

:func:`sync` runs in one transaction under a short ``lock_timeout`` (DDL must not queue behind a long
reader and block everyone after it; a timeout is transient, retried): it compares the mirror PostgreSQL has
with the one the schema wants (:func:`models.schema_diff.plan_mirror`), applies what can be applied
online, and records each new version (the CQL schema, what changed, the DDL run, the action). A change the
mirror cannot follow quarantines the table (recorded once); the next sync that finds the mirror fitting
(e.g. after ``cdc schema resolve --rebuild``) lifts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection, sql
from psycopg.types.json import Jsonb

from app.sink import ddl
from models.mirror_spec import MirrorSpec
from models.schema_diff import (
    ActualMirror,
    ColumnAction,
    Described,
    DropPolicy,
    SchemaChange,
    describe,
    diff,
    plan_mirror,
    recreated,
)

_ACTUAL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce((SELECT k.ord FROM unnest(i.indkey) WITH ORDINALITY k (attnum, ord) WHERE k.attnum = a.attnum), 0)
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""


DDL_LOCK = 0x63646364
"""The first key of the per-mirror advisory lock :func:`sync` holds (``cdcd``; the second: the mirror's name)."""


@dataclass
class SyncResult:
    version: int | None = None
    """The version recorded by this sync (None: nothing new)."""
    changes: list[SchemaChange] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    quarantine: str | None = None
    created: bool = False
    """The mirror table did not exist before this sync."""


def actual_mirror(conn: Connection[Any], spec: MirrorSpec) -> ActualMirror | None:
    qualified = sql.Identifier(spec.schema, spec.name).as_string(conn)
    rows = conn.execute(_ACTUAL, (qualified,)).fetchall()
    if not rows:
        return None
    columns = {name: pg_type for name, pg_type, _ in rows if not name.startswith("_cdc_")}
    key = tuple(name for name, _, position in sorted(rows, key=lambda r: r[2]) if position > 0)
    return ActualMirror(columns, key)


class Canonical:
    """PostgreSQL's own spelling of a type name (``format_type``), asked once per name."""

    def __init__(self, conn: Connection[Any]) -> None:
        self.conn = conn
        self.known: dict[str, str] = {}

    def __call__(self, pg_type: str) -> str:
        if pg_type not in self.known:
            row = self.conn.execute("SELECT format_type(%s::regtype, NULL)", (pg_type,)).fetchone()
            self.known[pg_type] = str(row[0]) if row else pg_type
        return self.known[pg_type]


def latest(conn: Connection[Any], keyspace: str, table: str) -> tuple[int, str, Any] | None:
    """(version, action, cql_schema) of the table's newest recorded version."""
    row = conn.execute(
        """SELECT version, action, cql_schema FROM _cdc_schema_metadata
           WHERE keyspace = %s AND "table" = %s ORDER BY version DESC LIMIT 1""",
        (keyspace, table),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), row[2])


def record(
    conn: Connection[Any],
    spec: MirrorSpec,
    action: str,
    described: dict[str, object] | None,
    changes: list[SchemaChange],
    statements: list[str],
    detail: str = "",
) -> int:
    previous = latest(conn, spec.keyspace, spec.table)
    version = 1 if previous is None else previous[0] + 1
    conn.execute(
        """INSERT INTO _cdc_schema_metadata
           (keyspace, "table", version, action, cql_schema, changes, ddl, detail)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            spec.keyspace,
            spec.table,
            version,
            action,
            Jsonb(described) if described is not None else None,
            Jsonb([c.as_dict() for c in changes]),
            ";\n".join(statements),
            detail,
        ),
    )
    return version


RECREATED = (
    "the table was dropped and created again in Cassandra: the mirror's rows belong to the old table "
    "(resolve with `cdc schema resolve --rebuild`: the old mirror is kept aside, events replay into a new one)"
)


def _fit(
    conn: Connection[Any],
    spec: MirrorSpec,
    actual: ActualMirror,
    previous: tuple[int, str, Any] | None,
    described: Described,
    drop_policy: DropPolicy,
) -> tuple[str | None, tuple[ColumnAction, ...]]:
    """Why the existing mirror cannot hold the table now (None if it can), and the statements that make it."""
    if previous is not None and previous[1] != "resolved" and recreated(previous[2], described):
        return RECREATED, ()
    plan = plan_mirror(actual, spec.source, drop_policy, Canonical(conn), spec.transforms)
    return plan.quarantine, plan.actions


def sync(
    conn: Connection[Any],
    spec: MirrorSpec,
    drop_policy: DropPolicy,
    lock_timeout_ms: int,
    table_id: str | None = None,
) -> SyncResult:
    """Make the mirror fit ``spec`` (inside the caller's transaction), or report why it cannot."""
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms")))
    # One sync of a table at a time across processes (workers, backfill runners): concurrent CREATE ... IF
    # NOT EXISTS of one schema or table can fail with a unique violation.
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (DDL_LOCK, f"{spec.schema}.{spec.name}"))
    described = describe(spec.source, table_id)
    previous = latest(conn, spec.keyspace, spec.table)
    changes = diff(previous[2] if previous else None, described)
    actual = actual_mirror(conn, spec)
    statements = ddl.mirror_ddl(spec)
    if actual is not None:
        reason, actions = _fit(conn, spec, actual, previous, described, drop_policy)
        if reason is not None:
            return _quarantine(conn, spec, reason, previous, described, changes)
        statements = [ddl.column_statement(spec, a) for a in actions]
    texts = [s.as_string(conn) for s in statements]
    for statement in statements:
        conn.execute(statement)
    result = SyncResult(changes=changes, statements=texts, created=actual is None)
    fresh = actual is None or previous is None
    moved = previous is not None and (previous[1] in ("quarantined", "dropped") or previous[2] != described)
    if changes or fresh or moved:
        action = "created" if fresh else "altered"
        result.version = record(conn, spec, action, described, changes, texts)
    return result


def _quarantine(
    conn: Connection[Any],
    spec: MirrorSpec,
    reason: str,
    previous: tuple[int, str, Any] | None,
    described: Described,
    changes: list[SchemaChange],
) -> SyncResult:
    result = SyncResult(changes=changes, quarantine=reason)
    if previous is None or previous[1] != "quarantined" or previous[2] != described:
        result.version = record(conn, spec, "quarantined", described, changes, [], reason)
    return result


def record_dropped(conn: Connection[Any], spec: MirrorSpec) -> int | None:
    """The table is gone from Cassandra: recorded once (its last schema, id included, so that a table created
    again under the name is seen as recreated); the mirror is kept and marked by a comment."""
    previous = latest(conn, spec.keyspace, spec.table)
    if previous is not None and previous[1] == "dropped":
        return None
    mark = sql.SQL("COMMENT ON TABLE {} IS {}").format(
        sql.Identifier(spec.schema, spec.name), sql.Literal("dropped in Cassandra: kept, no longer written")
    )
    conn.execute(mark)
    last = previous[2] if previous is not None else None
    changes = [SchemaChange("table_dropped")]
    return record(conn, spec, "dropped", last, changes, [mark.as_string(conn)], "mirror kept")


def versions(conn: Connection[Any], keyspace: str, table: str) -> list[dict[str, Any]]:
    """Every recorded version of a table, oldest first (JSON-able)."""
    rows = conn.execute(
        """SELECT version, action, cql_schema, changes, ddl, detail, detected_at FROM _cdc_schema_metadata
           WHERE keyspace = %s AND "table" = %s ORDER BY version""",
        (keyspace, table),
    ).fetchall()
    keys = ("version", "action", "cql_schema", "changes", "ddl", "detail", "detected_at")
    return [{**dict(zip(keys, row, strict=True)), "detected_at": row[6].isoformat()} for row in rows]

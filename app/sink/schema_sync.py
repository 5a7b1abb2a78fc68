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
from models.schema_diff import ActualMirror, DropPolicy, SchemaChange, describe, diff, plan_mirror

_ACTUAL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce(array_position(i.indkey::int2[], a.attnum), 0)
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""


@dataclass
class SyncResult:
    version: int | None = None
    """The version recorded by this sync (None: nothing new)."""
    changes: list[SchemaChange] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    quarantine: str | None = None


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


def sync(
    conn: Connection[Any], spec: MirrorSpec, drop_policy: DropPolicy, lock_timeout_ms: int
) -> SyncResult:
    """Make the mirror fit ``spec`` (inside the caller's transaction), or report why it cannot."""
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms")))
    described = describe(spec.source)
    previous = latest(conn, spec.keyspace, spec.table)
    changes = diff(previous[2] if previous else None, described)
    actual = actual_mirror(conn, spec)
    if actual is None:
        statements = ddl.mirror_ddl(spec)
        action = "created"
    else:
        plan = plan_mirror(actual, spec.source, drop_policy, Canonical(conn))
        if plan.quarantine is not None:
            result = SyncResult(changes=changes, quarantine=plan.quarantine)
            if previous is None or previous[1] != "quarantined" or previous[2] != described:
                result.version = record(conn, spec, "quarantined", described, changes, [], plan.quarantine)
            return result
        statements = [ddl.column_statement(spec, a) for a in plan.actions]
        action = "altered" if previous is not None else "created"
    texts = [s.as_string(conn) for s in statements]
    for statement in statements:
        conn.execute(statement)
    result = SyncResult(changes=changes, statements=texts)
    if (
        changes
        or previous is None
        or previous[1] == "quarantined"
        or (actual is None and previous is not None)
    ):
        result.version = record(conn, spec, action, described, changes, texts)
    return result


def record_dropped(conn: Connection[Any], spec: MirrorSpec) -> int | None:
    """The table is gone from Cassandra: recorded once; the mirror is kept."""
    previous = latest(conn, spec.keyspace, spec.table)
    if previous is not None and previous[1] == "dropped":
        return None
    return record(conn, spec, "dropped", None, [SchemaChange("table_dropped")], [], "mirror kept")

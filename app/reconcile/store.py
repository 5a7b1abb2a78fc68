"""Reconciliation jobs and mismatches in PostgreSQL (``_cdc_reconciliation_jobs``, ``_cdc_reconciliation_mismatches``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.reconcile.engine import Found, TableReport
from models.reconcile import drift_percent, row_hash


def start_job(conn: Connection[Any], strategy: str, tables: Sequence[str], job_type: str = "manual") -> int:
    row = conn.execute(
        "INSERT INTO _cdc_reconciliation_jobs (job_type, strategy, tables) VALUES (%s, %s, %s) RETURNING id",
        (job_type, strategy, Jsonb(list(tables))),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _checksum(values: dict[str, Any] | None) -> str | None:
    return None if values is None else f"{row_hash(list(values.values())):016x}"


def record_mismatches(conn: Connection[Any], job_id: int, table: str, found: Sequence[Found]) -> None:
    keyspace, _, name = table.partition(".")
    for f in found:
        conn.execute(
            """INSERT INTO _cdc_reconciliation_mismatches (job_id, keyspace, "table", primary_key, mismatch_type,
                   columns, cassandra_data, postgres_data, cassandra_checksum, postgres_checksum)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                job_id,
                keyspace,
                name,
                Jsonb(list(f.candidate.key)),
                f.candidate.kind.value,
                Jsonb(list(f.candidate.columns)),
                Jsonb(f.cassandra) if f.cassandra is not None else None,
                Jsonb(f.postgres) if f.postgres is not None else None,
                _checksum(f.cassandra),
                _checksum(f.postgres),
            ),
        )


def summary(report: TableReport) -> dict[str, Any]:
    """A table's result as stable JSON."""
    by_type: dict[str, int] = {}
    for f in report.mismatches:
        by_type[f.candidate.kind.value] = by_type.get(f.candidate.kind.value, 0) + 1
    rows = max(report.cassandra_rows, report.postgres_rows)
    drifted = len(report.mismatches) if report.strategy == "CHECKSUM" else report.count_difference
    return {
        "table": report.table,
        "strategy": report.strategy.value,
        "cassandra_rows": report.cassandra_rows,
        "postgres_rows": report.postgres_rows,
        "ranges": report.ranges,
        "mismatches": len(report.mismatches),
        "by_type": by_type,
        "in_flight": len(report.in_flight),
        "repaired": 0,
        "count_difference": report.count_difference,
        "drift_percentage": drift_percent(drifted, rows),
        "seconds": round(report.seconds, 3),
        "rows_per_minute": round(60 * (report.cassandra_rows + report.postgres_rows) / 2 / report.seconds)
        if report.seconds > 0
        else None,
    }


def finish_job(
    conn: Connection[Any], job_id: int, tables: Sequence[dict[str, Any]], errors: Sequence[str]
) -> dict[str, Any]:
    cassandra = sum(t["cassandra_rows"] for t in tables)
    postgres = sum(t["postgres_rows"] for t in tables)
    mismatches = sum(t["mismatches"] + t["count_difference"] for t in tables)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """UPDATE _cdc_reconciliation_jobs SET status = %s, finished_at = now(), cassandra_rows = %s,
                   postgres_rows = %s, ranges = %s, mismatches = %s, in_flight = %s, drift_percentage = %s,
                   errors = %s, report = %s
               WHERE id = %s RETURNING *""",
            (
                "failed" if errors else "done",
                cassandra,
                postgres,
                sum(t["ranges"] for t in tables),
                mismatches,
                sum(t["in_flight"] for t in tables),
                drift_percent(mismatches, max(cassandra, postgres)),
                Jsonb(list(errors)),
                Jsonb({"tables": list(tables)}),
                job_id,
            ),
        )
        found = cur.fetchone()
    assert found is not None
    return dict(found)


def resolved(conn: Connection[Any], job_id: int, table: str) -> int:
    """Mark a table's mismatches of a job repaired (``AUTO_RESOLVED``); how many."""
    keyspace, _, name = table.partition(".")
    return conn.execute(
        """UPDATE _cdc_reconciliation_mismatches SET resolution_status = 'AUTO_RESOLVED', resolved_at = now()
           WHERE job_id = %s AND keyspace = %s AND "table" = %s AND resolution_status = 'PENDING'""",
        (job_id, keyspace, name),
    ).rowcount

"""Reconciliation jobs and mismatches in PostgreSQL (``_cdc_reconciliation_jobs``, ``_cdc_reconciliation_mismatches``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.compare import hashable
from app.job_pages import job_page
from app.reconcile.engine import Found, RangeReport, TableReport
from models.reconcile import Candidate, Digest, MismatchType, drift_percent, row_hash
from models.token_ranges import TokenRange

WARNING_DRIFT = 1.0
"""Drift (percent of a table's rows) above which a job fires ``ReconciliationDriftWarning``
(``helm/cass-cdc-pg/files/prometheus-rules.yml``); ``alert_fired`` records it, as for a failed job."""


def start_job(
    conn: Connection[Any],
    strategy: str,
    tables: Sequence[str],
    job_type: str = "manual",
    owner: str = "",
    options: dict[str, Any] | None = None,
) -> int:
    row = conn.execute(
        """INSERT INTO _cdc_reconciliation_jobs (job_type, strategy, tables, owner, options, heartbeat_at)
           VALUES (%s, %s, %s, %s, %s, now()) RETURNING id""",
        (job_type, strategy, Jsonb(list(tables)), owner, Jsonb(options or {})),
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
                   errors = %s, report = %s, alert_fired = %s
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
                bool(errors) or any(t["drift_percentage"] > WARNING_DRIFT for t in tables),
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


JOB = (
    "id, job_type, owner, strategy, tables, status, started_at, finished_at, cassandra_rows, postgres_rows, ranges, "
    "mismatches, in_flight, drift_percentage, errors, alert_fired"
)
MISMATCH = (
    'id, job_id, keyspace, "table", primary_key, mismatch_type, columns, cassandra_data, postgres_data, '
    "cassandra_checksum, postgres_checksum, resolution_status, detected_at, resolved_at, resolution_note"
)


def _page(conn: Connection[Any], query: sql.Composed, params: list[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def jobs(conn: Connection[Any], filters: dict[str, Any], limit: int, after: int) -> list[dict[str, Any]]:
    """Jobs by id (newest last), filtered as :data:`app.job_pages.JOB_FILTERS` says."""
    return job_page(conn, "_cdc_reconciliation_jobs", JOB, filters, limit, after)


def job(conn: Connection[Any], job_id: int) -> dict[str, Any] | None:
    query = sql.SQL("SELECT {}, report, options FROM _cdc_reconciliation_jobs WHERE id = %s").format(
        sql.SQL(JOB)
    )
    found = _page(conn, query, [job_id])
    return found[0] if found else None


def mismatches(
    conn: Connection[Any], filters: dict[str, Any], limit: int, after: int
) -> list[dict[str, Any]]:
    """Mismatches by id, filtered by ``job_id``, ``table`` (``ks.t``), ``type``, ``status``."""
    where: list[sql.Composable] = [sql.SQL("id > %s")]
    params: list[Any] = [after]
    if filters.get("job_id") is not None:
        where.append(sql.SQL("job_id = %s"))
        params.append(filters["job_id"])
    if filters.get("table"):
        keyspace, _, name = str(filters["table"]).partition(".")
        where.append(sql.SQL('keyspace = %s AND "table" = %s'))
        params.extend([keyspace, name])
    if filters.get("type"):
        where.append(sql.SQL("mismatch_type = %s"))
        params.append(filters["type"])
    if filters.get("status"):
        where.append(sql.SQL("resolution_status = %s"))
        params.append(filters["status"])
    query = sql.SQL("SELECT {} FROM _cdc_reconciliation_mismatches WHERE {} ORDER BY id LIMIT %s").format(
        sql.SQL(MISMATCH), sql.SQL(" AND ").join(where)
    )
    return _page(conn, query, [*params, limit])


def resolve(conn: Connection[Any], mismatch_id: int, status: str, note: str | None) -> dict[str, Any] | None:
    """Close a mismatch by hand (``MANUAL_RESOLVED`` or ``IGNORED``)."""
    assert status in ("MANUAL_RESOLVED", "IGNORED"), status
    query = sql.SQL(
        """UPDATE _cdc_reconciliation_mismatches SET resolution_status = %s, resolution_note = %s,
               resolved_at = now() WHERE id = %s RETURNING {}"""
    ).format(sql.SQL(MISMATCH))
    found = _page(conn, query, [status, note, mismatch_id])
    return found[0] if found else None


def last_scheduled(conn: Connection[Any]) -> Any:
    """When the last scheduled job started (None: never)."""
    row = conn.execute(
        "SELECT max(started_at) FROM _cdc_reconciliation_jobs WHERE job_type = 'scheduled'"
    ).fetchone()
    return row[0] if row else None


def save_range(
    conn: Connection[Any],
    job_id: int,
    table: str,
    token_range: TokenRange,
    report: RangeReport | None,
    error: str | None,
) -> None:
    """A finished (or failed) range of a job, with what its first pass found, and the job's heartbeat."""
    found = [
        {"key": list(f.candidate.key), "kind": f.candidate.kind.value, "token": f.token}
        for f in (report.found if report else [])
    ]
    conn.execute(
        """INSERT INTO _cdc_reconciliation_ranges (job_id, "table", range_start, range_end, status,
               cassandra_rows, postgres_rows, found, error)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (job_id, "table", range_start) DO UPDATE SET status = EXCLUDED.status,
               cassandra_rows = EXCLUDED.cassandra_rows, postgres_rows = EXCLUDED.postgres_rows,
               found = EXCLUDED.found, error = EXCLUDED.error, finished_at = now()""",
        (
            job_id,
            table,
            token_range.start,
            token_range.end,
            "failed" if report is None else "done",
            report.cassandra.count if report else 0,
            report.postgres.count if report else 0,
            Jsonb(found),
            error,
        ),
    )
    conn.execute("UPDATE _cdc_reconciliation_jobs SET heartbeat_at = now() WHERE id = %s", (job_id,))


def done_ranges(conn: Connection[Any], job_id: int, table: str) -> dict[TokenRange, RangeReport]:
    """The ranges of a table an earlier run of the job finished, as reports (first-pass findings by key)."""
    rows = conn.execute(
        """SELECT range_start, range_end, cassandra_rows, postgres_rows, found FROM _cdc_reconciliation_ranges
           WHERE job_id = %s AND "table" = %s AND status = 'done'""",
        (job_id, table),
    ).fetchall()
    done = {}
    for start, end, c, p, found in rows:
        r = TokenRange(int(start), int(end))
        done[r] = RangeReport(
            r,
            Digest(int(c)),
            Digest(int(p)),
            [
                Found(
                    Candidate(tuple(hashable(v) for v in f["key"]), MismatchType(f["kind"])),
                    None,
                    None,
                    None,
                    None,
                    r,
                    token=f["token"],
                )
                for f in found
            ],
        )
    return done


def resumable(conn: Connection[Any], stale_s: float) -> list[dict[str, Any]]:
    """Running jobs whose runner stopped (no heartbeat for ``stale_s``)."""
    query = sql.SQL(
        "SELECT {}, options FROM _cdc_reconciliation_jobs WHERE status = 'running' "
        "AND coalesce(heartbeat_at, started_at) < now() - make_interval(secs => %s) ORDER BY id"
    ).format(sql.SQL(JOB))
    return _page(conn, query, [stale_s])


def claim_stale(conn: Connection[Any], job_id: int, owner: str, stale_s: float) -> bool:
    """Take over a stale running job (one worker wins)."""
    return (
        conn.execute(
            """UPDATE _cdc_reconciliation_jobs SET owner = %s, heartbeat_at = now()
               WHERE id = %s AND status = 'running'
                 AND coalesce(heartbeat_at, started_at) < now() - make_interval(secs => %s)""",
            (owner, job_id, stale_s),
        ).rowcount
        == 1
    )


def reopen(conn: Connection[Any], job_id: int) -> None:
    """A job run again is running again (its mismatches are found anew: the pending ones are dropped)."""
    conn.execute(
        "UPDATE _cdc_reconciliation_jobs SET status = 'running', finished_at = NULL, heartbeat_at = now() "
        "WHERE id = %s",
        (job_id,),
    )
    conn.execute(
        "DELETE FROM _cdc_reconciliation_mismatches WHERE job_id = %s AND resolution_status = 'PENDING'",
        (job_id,),
    )

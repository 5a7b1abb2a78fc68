"""Backfill jobs and their ranges in PostgreSQL (``_cdc_backfill_jobs``, ``_cdc_backfill_ranges``).

A range's progress (rows, the last token applied) is written in the same transaction as the batch's rows, so
a job killed at any moment resumes after the last batch that committed: no row is applied twice by a resume
(``rows`` of a finished job equals the rows Cassandra returned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import Connection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.job_pages import job_page
from models.token_ranges import TokenRange


@dataclass(frozen=True)
class RangeRow:
    table: str
    ordinal: int
    """The range's number within its job (its claim's advisory lock key)."""
    token_range: TokenRange
    position: int | None
    """The last token applied (the range resumes after it); None: not started."""
    rows: int

    @property
    def resume_from(self) -> int:
        return self.token_range.start if self.position is None else self.position


def start_job(
    conn: Connection[Any], tables: Sequence[str], options: dict[str, Any], owner: str, ranges: int
) -> int:
    """Record a job (``running``) and every table's ranges (``pending``)."""
    from models.token_ranges import split

    row = conn.execute(
        "INSERT INTO _cdc_backfill_jobs (tables, options, owner, heartbeat_at) VALUES (%s, %s, %s, now()) "
        "RETURNING id",
        (Jsonb(list(tables)), Jsonb(options), owner),
    ).fetchone()
    assert row is not None
    job_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            'INSERT INTO _cdc_backfill_ranges (job_id, "table", ordinal, range_start, range_end) '
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (job_id, table, i, r.start, r.end)
                for i, (table, r) in enumerate((t, r) for t in tables for r in split(ranges))
            ],
        )
    return job_id


def open_ranges(conn: Connection[Any], job_id: int, table: str) -> list[RangeRow]:
    """The table's ranges not done (pending or failed), in token order."""
    found = conn.execute(
        """SELECT ordinal, range_start, range_end, position, rows FROM _cdc_backfill_ranges
           WHERE job_id = %s AND "table" = %s AND status <> 'done' ORDER BY range_start""",
        (job_id, table),
    ).fetchall()
    return [RangeRow(table, o, TokenRange(int(s), int(e)), p, int(n)) for o, s, e, p, n in found]


def claim_range(conn: Connection[Any], job_id: int, row: RangeRow) -> RangeRow | None:
    """Take a range for this session (``conn``, autocommit): a session-level advisory lock on (job, ordinal),
    released by :func:`release_range` or when the session ends (a killed runner's ranges are free at once).
    The range as stored now, or None if another session holds it or it is done. Several runners (``cdc
    backfill --resume JOB`` in more processes, on more machines) so share one job's ranges."""
    locked = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (job_id, row.ordinal)).fetchone()
    if not locked or not locked[0]:
        return None
    found = conn.execute(
        """SELECT position, rows, status FROM _cdc_backfill_ranges
           WHERE job_id = %s AND "table" = %s AND range_start = %s""",
        (job_id, row.table, row.token_range.start),
    ).fetchone()
    if found is None or found[2] == "done":
        release_range(conn, job_id, row)
        return None
    return RangeRow(row.table, row.ordinal, row.token_range, found[0], int(found[1]))


def release_range(conn: Connection[Any], job_id: int, row: RangeRow) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (job_id, row.ordinal))


def save_batch(
    conn: Connection[Any],
    job_id: int,
    table: str,
    token_range: TokenRange,
    rows: int,
    position: int | None,
    done: bool,
) -> None:
    """A batch's progress, inside the batch's transaction."""
    conn.execute(
        """UPDATE _cdc_backfill_ranges SET rows = rows + %s, batches = batches + 1,
               position = coalesce(%s, position), status = %s, error = NULL, updated_at = now()
           WHERE job_id = %s AND "table" = %s AND range_start = %s""",
        (rows, position, "done" if done else "pending", job_id, table, token_range.start),
    )


def fail_range(conn: Connection[Any], job_id: int, table: str, token_range: TokenRange, error: str) -> None:
    conn.execute(
        """UPDATE _cdc_backfill_ranges SET status = 'failed', error = %s, updated_at = now()
           WHERE job_id = %s AND "table" = %s AND range_start = %s""",
        (error[:2000], job_id, table, token_range.start),
    )


def heartbeat(conn: Connection[Any], job_id: int) -> None:
    conn.execute("UPDATE _cdc_backfill_jobs SET heartbeat_at = now() WHERE id = %s", (job_id,))


TABLE_PROGRESS = """SELECT "table", count(*) AS ranges, count(*) FILTER (WHERE status = 'done') AS ranges_done,
        count(*) FILTER (WHERE status = 'failed') AS ranges_failed, coalesce(sum(rows), 0)::bigint AS rows,
        coalesce(sum(batches), 0)::bigint AS batches
    FROM _cdc_backfill_ranges WHERE job_id = %s GROUP BY "table" ORDER BY "table\""""


def progress(conn: Connection[Any], job_id: int) -> list[dict[str, Any]]:
    """Per table: ranges, ranges done and failed, rows applied, batches committed."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(TABLE_PROGRESS, (job_id,))
        return [dict(r) for r in cur.fetchall()]


def range_errors(conn: Connection[Any], job_id: int) -> list[str]:
    found = conn.execute(
        """SELECT "table", range_start, range_end, error FROM _cdc_backfill_ranges
           WHERE job_id = %s AND status = 'failed' ORDER BY "table", range_start""",
        (job_id,),
    ).fetchall()
    return [f"{t} ({s}, {e}]: {error}" for t, s, e, error in found]


def finish_job(
    conn: Connection[Any], job_id: int, report: dict[str, Any], errors: Sequence[str]
) -> dict[str, Any]:
    """A runner's end: the job is ``done`` when every range is, ``failed`` when none is left pending but some
    failed (or a table could not run), else still ``running`` (another runner holds ranges)."""
    counts = conn.execute(
        """SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'failed'),
               coalesce(sum(rows), 0) FROM _cdc_backfill_ranges WHERE job_id = %s""",
        (job_id,),
    ).fetchone()
    pending, failed, rows = counts if counts is not None else (0, 0, 0)
    status = "failed" if errors else "running" if pending else "failed" if failed else "done"
    errors = [*errors, *range_errors(conn, job_id)]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """UPDATE _cdc_backfill_jobs SET status = %s, errors = %s, report = %s, rows = %s,
                   finished_at = CASE WHEN %s = 'running' THEN NULL ELSE now() END
               WHERE id = %s RETURNING *""",
            (status, Jsonb(list(errors)), Jsonb(report), rows, status, job_id),
        )
        found = cur.fetchone()
    assert found is not None
    return dict(found)


def reopen(conn: Connection[Any], job_id: int, owner: str) -> None:
    """A job resumed is running again, by ``owner``; its failed ranges are tried again."""
    conn.execute(
        "UPDATE _cdc_backfill_jobs SET status = 'running', finished_at = NULL, heartbeat_at = now(), owner = %s "
        "WHERE id = %s",
        (owner, job_id),
    )
    conn.execute(
        "UPDATE _cdc_backfill_ranges SET status = 'pending' WHERE job_id = %s AND status = 'failed'",
        (job_id,),
    )


JOB = "id, tables, status, options, owner, started_at, heartbeat_at, finished_at, rows, errors"


def job(conn: Connection[Any], job_id: int) -> dict[str, Any] | None:
    """A job with each table's progress (``tables_progress``) and its report once finished."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT {}, report FROM _cdc_backfill_jobs WHERE id = %s").format(sql.SQL(JOB)), (job_id,)
        )
        found = cur.fetchone()
    if found is None:
        return None
    return {**found, "progress": progress(conn, job_id)}


def jobs(conn: Connection[Any], filters: dict[str, Any], limit: int, after: int) -> list[dict[str, Any]]:
    """Jobs by id (oldest first), filtered as :data:`app.job_pages.JOB_FILTERS` says."""
    return job_page(conn, "_cdc_backfill_jobs", JOB, filters, limit, after)


def never_backfilled(conn: Connection[Any]) -> list[str]:
    """Tables whose mirror a worker created (``_cdc_schema_metadata``) and that no backfill job covers."""
    rows = conn.execute(
        """SELECT DISTINCT m.keyspace || '.' || m."table" AS name FROM _cdc_schema_metadata m
           WHERE m.action = 'created' AND NOT EXISTS (
               SELECT 1 FROM _cdc_backfill_jobs j WHERE j.tables ? (m.keyspace || '.' || m."table"))
           ORDER BY name"""
    ).fetchall()
    return [r[0] for r in rows]

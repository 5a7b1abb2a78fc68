"""SQL on the dead letters (``_cdc_dlq_records``) and the replay jobs (``_cdc_dlq_replays``); every function
runs in the caller's connection (and transaction, where it says so)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from psycopg import Connection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from models.dlq import REPLAYABLE, DlqFilter, ReplayRequest

SUMMARY = (
    'id, topic, partition, "offset", error_type, error_message, status, retry_count, last_error, '
    "resolution_note, replay_id, recorded_at, published_at, replayed_at, truncated"
)
"""What a list shows of each dead letter (no payload: that needs the token, one record at a time)."""
JOB = (
    "id, filter, mode, rate, scheduled_at, status, requested_by, owner, heartbeat_at, created_at, started_at, "
    "finished_at, matched, replayed, failed, error"
)


def where(f: DlqFilter, prefix: str) -> sql.Composed:
    """The WHERE clause selecting ``f`` (values as literals: a composed statement carries them)."""
    parts: list[sql.Composable] = [sql.SQL("TRUE")]
    if f.ids:
        parts.append(sql.SQL("id = ANY({})").format(sql.Literal(list(f.ids))))
    if f.table is not None:
        parts.append(sql.SQL("topic = {}").format(sql.Literal(f"{prefix}.{f.table}")))
    if f.reason is not None:
        parts.append(sql.SQL("error_type = {}").format(sql.Literal(f.reason)))
    if f.since is not None:
        parts.append(sql.SQL("recorded_at >= {}").format(sql.Literal(f.since)))
    if f.until is not None:
        parts.append(sql.SQL("recorded_at < {}").format(sql.Literal(f.until)))
    if f.statuses:
        parts.append(sql.SQL("status = ANY({})").format(sql.Literal(list(f.statuses))))
    return sql.SQL(" AND ").join(parts)


def _rows(
    conn: Connection[Any], query: str | sql.Composed, params: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall()) if cur.description else []


def records(
    conn: Connection[Any], f: DlqFilter, prefix: str, limit: int, after: int = 0
) -> list[dict[str, Any]]:
    """A page of dead letters (by id, after ``after``)."""
    query = sql.SQL("SELECT {} FROM _cdc_dlq_records WHERE {} AND id > %s ORDER BY id LIMIT %s").format(
        sql.SQL(SUMMARY), where(f, prefix)
    )
    return _rows(conn, query, (after, limit))


def count(conn: Connection[Any], f: DlqFilter, prefix: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM _cdc_dlq_records WHERE {}").format(where(f, prefix)))
    found = row.fetchone()
    return int(found[0]) if found else 0


def summary(conn: Connection[Any], f: DlqFilter, prefix: str) -> list[dict[str, Any]]:
    """Counts by origin topic, reason and status (what a dry run reports)."""
    query = sql.SQL(
        "SELECT topic, error_type, status, count(*) AS records FROM _cdc_dlq_records WHERE {} "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ).format(where(f, prefix))
    return _rows(conn, query)


def record(conn: Connection[Any], record_id: int) -> dict[str, Any] | None:
    """One dead letter with its payload (key, value, headers) and history."""
    query = sql.SQL("SELECT {}, key, value, headers, history FROM _cdc_dlq_records WHERE id = %s").format(
        sql.SQL(SUMMARY)
    )
    found = _rows(conn, query, (record_id,))
    return found[0] if found else None


def close(conn: Connection[Any], ids: Sequence[int], status: str, note: str | None) -> list[int]:
    """Mark dead letters ``resolved`` or ``ignored`` by hand (not while a replay holds them); the ids done."""
    assert status in ("resolved", "ignored"), status
    found = conn.execute(
        """UPDATE _cdc_dlq_records SET status = %s, resolution_note = %s,
               history = history || jsonb_build_array(jsonb_build_object(
                   'at', now(), 'outcome', %s::text, 'note', %s::text))
           WHERE id = ANY(%s) AND status <> 'replaying' RETURNING id""",
        (status, note, status, note, list(ids)),
    ).fetchall()
    return sorted(int(r[0]) for r in found)


def purge(conn: Connection[Any], older_than: timedelta, f: DlqFilter, prefix: str) -> int:
    """Delete dead letters recorded more than ``older_than`` ago that ``f`` selects (never one a replay
    holds); how many."""
    query = sql.SQL(
        "DELETE FROM _cdc_dlq_records WHERE {} AND recorded_at < now() - %s AND status <> 'replaying'"
    ).format(where(f, prefix))
    return conn.execute(query, (older_than,)).rowcount


# -- replay jobs ----------------------------------------------------------------------------------------------
def create_job(
    conn: Connection[Any], request: ReplayRequest, requested_by: str, owner: str | None = None
) -> dict[str, Any]:
    """A new job: ``scheduled`` (a worker's timer starts it at ``scheduled_at``), or already ``running``
    under ``owner`` (the CLI runs it itself; should it die, a worker takes the job over once stale)."""
    query = sql.SQL(
        """INSERT INTO _cdc_dlq_replays (filter, mode, rate, scheduled_at, requested_by, status, owner,
                                         heartbeat_at, started_at)
           VALUES (%s, %s, %s, coalesce(%s, now()), %s, %s, %s,
                   CASE WHEN %s THEN now() END, CASE WHEN %s THEN now() END)
           RETURNING {}"""
    ).format(sql.SQL(JOB))
    body = Jsonb(request.filter.as_dict())
    running = owner is not None
    status = "running" if running else "scheduled"
    params = (
        body,
        request.mode.value,
        request.rate,
        request.at,
        requested_by,
        status,
        owner,
        running,
        running,
    )
    return _rows(conn, query, params)[0]


def job(conn: Connection[Any], job_id: int) -> dict[str, Any] | None:
    found = _rows(
        conn, sql.SQL("SELECT {} FROM _cdc_dlq_replays WHERE id = %s").format(sql.SQL(JOB)), (job_id,)
    )
    return found[0] if found else None


def claim_job(
    conn: Connection[Any], owner: str, stale_s: float, job_id: int | None = None
) -> dict[str, Any] | None:
    """Take the next due job (or ``job_id``): scheduled and due, or running without a heartbeat for
    ``stale_s`` (its worker died). ``SKIP LOCKED``: two workers never take the same job."""
    query = sql.SQL(
        """UPDATE _cdc_dlq_replays SET status = 'running', owner = %s, heartbeat_at = now(),
               started_at = coalesce(started_at, now())
           WHERE id = (
               SELECT id FROM _cdc_dlq_replays
               WHERE (%s::bigint IS NULL OR id = %s::bigint) AND (
                   (status = 'scheduled' AND scheduled_at <= now())
                   OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => %s)))
               ORDER BY scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING {}"""
    ).format(sql.SQL(JOB))
    found = _rows(conn, query, (owner, job_id, job_id, stale_s))
    return found[0] if found else None


def take_records(conn: Connection[Any], job_row: dict[str, Any], prefix: str) -> int:
    """Put the records the job's filter matches under the job (``replaying``), once per job (the job's row
    is locked: a second runner of the same job finds them taken); how many it holds. A record another job
    holds is not taken (the UPDATE waits for its lock, then re-checks)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT matched, taken_at FROM _cdc_dlq_replays WHERE id = %s FOR UPDATE", (job_row["id"],)
        ).fetchone()
        assert row is not None, job_row["id"]
        if row[1] is not None:
            return int(row[0])
        f = DlqFilter.from_dict(job_row["filter"]).with_default_statuses(REPLAYABLE)
        query = sql.SQL(
            "UPDATE _cdc_dlq_records SET status = 'replaying', replay_id = %s "
            "WHERE {} AND status <> 'replaying'"
        ).format(where(f, prefix))
        taken = conn.execute(query, (job_row["id"],)).rowcount
        conn.execute(
            "UPDATE _cdc_dlq_replays SET matched = %s, taken_at = now() WHERE id = %s", (taken, job_row["id"])
        )
        return taken


def next_records(conn: Connection[Any], job_id: int, limit: int) -> list[dict[str, Any]]:
    """The job's next records still to replay, locked (``SKIP LOCKED``: two runners of one job split them)."""
    return _rows(
        conn,
        """SELECT id, topic, partition, "offset", key, value, headers FROM _cdc_dlq_records
           WHERE replay_id = %s AND status = 'replaying' ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""",
        (job_id, limit),
    )


def settle(
    conn: Connection[Any], job_id: int, replayed: Sequence[int], failed: Sequence[tuple[int, str, str]]
) -> None:
    """Record a chunk's outcome, in the transaction that applied it: ``replayed`` records, ``failed`` ones
    (id, new reason, message), the job's counts and heartbeat."""
    conn.execute(
        """UPDATE _cdc_dlq_records SET status = 'replayed', replayed_at = now(), retry_count = retry_count + 1,
               history = history || jsonb_build_array(jsonb_build_object(
                   'at', now(), 'replay_id', %s::bigint, 'outcome', 'replayed'))
           WHERE id = ANY(%s)""",
        (job_id, list(replayed)),
    )
    for record_id, reason, message in failed:
        conn.execute(
            """UPDATE _cdc_dlq_records SET status = 'failed', retry_count = retry_count + 1,
                   error_type = %s, last_error = %s,
                   history = history || jsonb_build_array(jsonb_build_object(
                       'at', now(), 'replay_id', %s::bigint, 'outcome', 'failed', 'reason', %s::text,
                       'message', %s::text))
               WHERE id = %s""",
            (reason, message, job_id, reason, message[:2000], record_id),
        )
    conn.execute(
        """UPDATE _cdc_dlq_replays SET replayed = replayed + %s, failed = failed + %s, heartbeat_at = now()
           WHERE id = %s""",
        (len(replayed), len(failed), job_id),
    )


def finish_job(conn: Connection[Any], job_id: int, error: str | None = None) -> dict[str, Any] | None:
    """End a job (``done``, or ``failed`` with ``error``); records it still held go back to where they were."""
    conn.execute(
        """UPDATE _cdc_dlq_records SET status = CASE WHEN retry_count > 0 THEN 'failed' ELSE 'pending' END,
               replay_id = NULL
           WHERE replay_id = %s AND status = 'replaying'""",
        (job_id,),
    )
    query = sql.SQL(
        """UPDATE _cdc_dlq_replays SET status = %s, error = %s, finished_at = now(), heartbeat_at = now()
           WHERE id = %s RETURNING {}"""
    ).format(sql.SQL(JOB))
    found = _rows(conn, query, ("failed" if error else "done", error, job_id))
    return found[0] if found else None


def remaining(conn: Connection[Any], job_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM _cdc_dlq_records WHERE replay_id = %s AND status = 'replaying'", (job_id,)
    ).fetchone()
    return int(row[0]) if row else 0

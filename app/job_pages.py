"""Listing a job table page by page (reconciliation and backfill jobs): by id, filtered by the tables a job
covers, its status and when it started; every name composed with ``psycopg.sql``."""

from __future__ import annotations

from typing import Any

from psycopg import Connection, sql
from psycopg.rows import dict_row

JOB_FILTERS = {
    "table": "tables ? %s",
    "status": "status = %s",
    "from": "started_at >= %s",
    "to": "started_at < %s",
}
"""Filter name -> condition: ``table`` (``ks.t`` among the job's tables), ``status``, ``from``/``to`` (started
at or after / before)."""


def job_page(
    conn: Connection[Any], table: str, columns: str, filters: dict[str, Any], limit: int, after: int
) -> list[dict[str, Any]]:
    """Rows of job table ``table`` with ids above ``after`` (oldest first), at most ``limit``."""
    where: list[sql.Composable] = [sql.SQL("id > %s")]
    params: list[Any] = [after]
    for name, condition in JOB_FILTERS.items():
        if filters.get(name):
            where.append(sql.SQL(condition))
            params.append(filters[name])
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY id LIMIT %s").format(
        sql.SQL(columns), sql.Identifier(table), sql.SQL(" AND ").join(where)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, [*params, limit])
        return [dict(r) for r in cur.fetchall()]

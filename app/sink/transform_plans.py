"""The transform plan each mirror's rows are written under (``_cdc_transform_plans``): its fingerprint and
rules, recorded when the mirror is created, compared whenever the table is installed.

A plan that differs from the stored one means the rules (or the hash key) changed since rows were written:
new writes follow the new plan, rows written before keep the old one until the mirror is rebuilt. The change
is recorded (``previous_fingerprint``, ``changed_at``) and reported; a rebuilt mirror (created afresh) clears it,
and so does a clean reconciliation of the whole table under the current plan (:func:`mark_followed`): it proves
every row follows the plan.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from models.mirror_spec import MirrorSpec
from models.transforms import NO_TRANSFORMS


def store_plan(conn: Connection[Any], spec: MirrorSpec, fresh: bool) -> str | None:
    """Record ``spec``'s plan (inside the caller's transaction). Returns a description of the change when a
    different plan was stored for rows that exist (or the mirror existed before any plan was recorded and the
    plan is not empty), else None."""
    plan = spec.transforms or NO_TRANSFORMS
    row = conn.execute(
        """SELECT fingerprint, changed_at FROM _cdc_transform_plans WHERE keyspace = %s AND "table" = %s""",
        (spec.keyspace, spec.table),
    ).fetchone()
    rules = Jsonb(plan.describe())
    if fresh or (row is None and plan.empty):
        conn.execute(
            """INSERT INTO _cdc_transform_plans (keyspace, "table", fingerprint, rules) VALUES (%s, %s, %s, %s)
               ON CONFLICT (keyspace, "table") DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
                 rules = EXCLUDED.rules, recorded_at = now(), previous_fingerprint = NULL, changed_at = NULL""",
            (spec.keyspace, spec.table, plan.fingerprint, rules),
        )
        return None
    if row is not None and row[0] == plan.fingerprint:
        return (
            None
            if row[1] is None
            else f"rules changed at {row[1].isoformat()}; not rebuilt or repaired since"
        )
    before = "no recorded plan" if row is None else f"plan {row[0]}"
    conn.execute(
        """INSERT INTO _cdc_transform_plans (keyspace, "table", fingerprint, rules, previous_fingerprint,
             changed_at) VALUES (%s, %s, %s, %s, %s, now())
           ON CONFLICT (keyspace, "table") DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
             rules = EXCLUDED.rules, recorded_at = now(),
             previous_fingerprint = EXCLUDED.previous_fingerprint, changed_at = now()""",
        (spec.keyspace, spec.table, plan.fingerprint, rules, None if row is None else row[0]),
    )
    return f"{before} -> plan {plan.fingerprint}; rows written before keep the old rule until rebuilt"


def stored_plans(conn: Connection[Any]) -> list[dict[str, Any]]:
    """Every mirror's recorded plan (JSON-able), for ``/health``."""
    rows = conn.execute(
        """SELECT keyspace, "table", fingerprint, rules, previous_fingerprint, changed_at
           FROM _cdc_transform_plans ORDER BY keyspace, "table" """
    ).fetchall()
    return [
        {
            "table": f"{r[0]}.{r[1]}",
            "fingerprint": r[2],
            "rules": r[3],
            "previous_fingerprint": r[4],
            "changed_at": None if r[5] is None else r[5].isoformat(),
        }
        for r in rows
    ]


def mark_followed(conn: Connection[Any], keyspace: str, table: str, fingerprint: str) -> bool:
    """After a clean reconciliation of the whole table under plan ``fingerprint``: its rows follow the plan,
    so a recorded change is cleared. Whether one was."""
    cur = conn.execute(
        """UPDATE _cdc_transform_plans SET changed_at = NULL, previous_fingerprint = NULL, recorded_at = now()
           WHERE keyspace = %s AND "table" = %s AND fingerprint = %s AND changed_at IS NOT NULL""",
        (keyspace, table, fingerprint),
    )
    return cur.rowcount > 0

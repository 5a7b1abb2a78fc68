"""Loading and writing mirror state in PostgreSQL, set-based (COPY into temp tables + one statement each).

All functions take an open connection inside the caller's transaction; nothing here commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from psycopg import Connection, sql
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads

from app.sink import ddl
from models.convergence import PartitionTombstones, RowState
from models.cql_types import JsonbValue
from models.merge_plan import Needs, Plan
from models.mirror_spec import ColumnSpec, MirrorSpec
from models.mutations import Key, PartitionDelete, RangeDelete
from models.state_codec import (
    STATE_COLUMNS,
    decode_tombstone,
    encode_range,
    fold_tombstones,
    mirror_columns,
    mirror_row,
    row_reader,
    state_row,
)

_JSONB_STATE = frozenset({"_cdc_cells"})

# orjson is several times faster than the standard library for the jsonb columns and _cdc_cells.
set_json_dumps(orjson.dumps)
set_json_loads(orjson.loads)


def _temp_name(kind: str, spec: MirrorSpec) -> str:
    """A session's staging table for one mirror *and column set*: after a column is added, the new store
    stages into new temp tables instead of the old ones (``CREATE ... IF NOT EXISTS`` would keep the old
    columns and every COPY would fail)."""
    columns = ",".join(f"{c.name}:{c.pg_type}" for c in (*spec.primary_key, *spec.columns))
    identity = f"{spec.schema}.{spec.name}|{columns}"
    digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()[:16]
    return f"_cdc_{kind}_{digest}"


def _adapt(column: ColumnSpec | None, name: str, value: object) -> object:
    """Wrap values for jsonb columns; everything else psycopg adapts by itself."""
    if value is None or isinstance(value, Jsonb):
        return value
    if isinstance(value, JsonbValue) or _is_jsonb(column, name):
        return _jsonb(value)
    return value


def _jsonb(value: object) -> Jsonb:
    """psycopg's jsonb wrapper of a value; a :class:`JsonbValue` document is unwrapped first."""
    return Jsonb(value.obj if isinstance(value, JsonbValue) else value)


def _is_jsonb(column: ColumnSpec | None, name: str) -> bool:
    return name in _JSONB_STATE or (column is not None and column.pg_type.startswith("jsonb"))


class MirrorStore:
    """Set-based access to one mirror table and its side tables."""

    def __init__(self, spec: MirrorSpec) -> None:
        self.spec = spec
        self.pk = [c.name for c in spec.primary_key]
        self.part = [c.name for c in spec.partition_key]
        self.mirror_cols = mirror_columns(spec)
        self.dead_cols = [*self.pk, *STATE_COLUMNS]
        self.state_select = [*self.pk, *(c.name for c in spec.columns), *STATE_COLUMNS]
        """What a load reads of a mirror row (a dead row: the same without the value columns)."""
        self.read_mirror = row_reader(spec, self.state_select)
        self.read_dead = row_reader(spec, self.dead_cols)
        self.types = {c.name: c for c in (*spec.primary_key, *spec.columns)}
        self.keys_tmp = _temp_name("k", spec)
        self.parts_tmp = _temp_name("p", spec)
        self.stage_tmp = _temp_name("s", spec)
        self.dead_stage_tmp = _temp_name("d", spec)
        self._temps_ready: set[int] = set()

    # -- set-up -------------------------------------------------------------------------------------------
    def ensure(self, conn: Connection[Any]) -> None:
        for statement in ddl.mirror_ddl(self.spec):
            conn.execute(statement)

    def _ensure_temps(self, conn: Connection[Any]) -> None:
        """Create the session's temp tables if they are missing. Created inside the caller's transaction, they
        vanish if it rolls back, so a connection already seen is checked (one catalog lookup), not trusted."""
        if id(conn) in self._temps_ready and self._temps_exist(conn):
            return
        s = self.spec
        mirror, dead = ddl.ident(s.schema, s.name), ddl.ident(s.schema, s.dead_name)
        like = "CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA"
        for tmp, cols, source in (
            (self.keys_tmp, self.pk, mirror),
            (self.parts_tmp, self.part, mirror),
            (self.stage_tmp, self.mirror_cols, mirror),
            (self.dead_stage_tmp, self.dead_cols, dead),
        ):
            conn.execute(sql.SQL(like).format(ddl.ident(tmp), ddl.column_list(cols), source))
        self._temps_ready.add(id(conn))

    def _temps_exist(self, conn: Connection[Any]) -> bool:
        """All four are created in one transaction: one of them tells for all."""
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"pg_temp.{self.dead_stage_tmp}",)
        ).fetchone()
        return row is not None and bool(row[0])

    def _fill(
        self, conn: Connection[Any], tmp: str, cols: Sequence[str], rows: Iterable[Sequence[object]]
    ) -> None:
        conn.execute(sql.SQL("TRUNCATE {}").format(ddl.ident(tmp)))
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(ddl.ident(tmp), ddl.column_list(list(cols)))
        wrap = [i for i, c in enumerate(cols) if _is_jsonb(self.types.get(c), c)]
        with conn.cursor().copy(query) as copy:
            for row in rows:
                if wrap:
                    row = row if type(row) is list else list(row)  # a list is the caller's own (mirror_row)
                    for i in wrap:
                        if row[i] is not None and not isinstance(row[i], Jsonb):
                            row[i] = _jsonb(row[i])
                copy.write_row(row)

    # -- load ---------------------------------------------------------------------------------------------
    def load(
        self, conn: Connection[Any], needs: Needs
    ) -> tuple[dict[Key, RowState], dict[Key, PartitionTombstones]]:
        self._ensure_temps(conn)
        s = self.spec
        rows: dict[Key, RowState] = {}
        self._fill(conn, self.keys_tmp, self.pk, needs.row_keys)
        if needs.full_partitions:
            self._fill(conn, self.parts_tmp, self.part, needs.full_partitions)
        for table, select, read in (
            (s.name, self.state_select, self.read_mirror),
            (s.dead_name, self.dead_cols, self.read_dead),
        ):
            joins = [(self.keys_tmp, self.pk)]
            if needs.full_partitions:
                joins.append((self.parts_tmp, self.part))
            for tmp, join_cols in joins:
                query = sql.SQL("SELECT {} FROM {} t JOIN {} USING ({})").format(
                    sql.SQL(", ").join(sql.SQL("t.{}").format(ddl.ident(c)) for c in select),
                    ddl.ident(s.schema, table),
                    ddl.ident(tmp),
                    ddl.column_list(join_cols),
                )
                for record in conn.execute(query):
                    key, state = read(record)
                    rows.setdefault(key, state)
        return rows, self._load_tombstones(conn, needs.partitions)

    def _load_tombstones(
        self, conn: Connection[Any], partitions: Iterable[Key]
    ) -> dict[Key, PartitionTombstones]:
        s = self.spec
        self._fill(conn, self.parts_tmp, self.part, partitions)
        query = sql.SQL(
            "SELECT {}, t._cdc_kind, t._cdc_ts, t._cdc_range FROM {} t JOIN {} USING ({})"
        ).format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(ddl.ident(c)) for c in self.part),
            ddl.ident(s.schema, s.tombstones_name),
            ddl.ident(self.parts_tmp),
            ddl.column_list(self.part),
        )
        n = len(self.part)
        items = [
            (tuple(r[:n]), decode_tombstone(tuple(r[:n]), r[n], r[n + 1], r[n + 2]))
            for r in conn.execute(query).fetchall()
        ]
        return fold_tombstones(items)

    # -- write --------------------------------------------------------------------------------------------
    def write(self, conn: Connection[Any], plan: Plan, now_us: int) -> None:
        self._ensure_temps(conn)
        visible, dead, gone = [], [], []
        for key, row in plan.rows.items():
            if row.is_visible(now_us):
                visible.append((key, row))
            elif row.is_empty():
                gone.append(key)
            else:
                dead.append((key, row))
        s = self.spec
        if visible:
            self._fill(
                conn, self.stage_tmp, self.mirror_cols, (mirror_row(s, k, r, now_us) for k, r in visible)
            )
            self._upsert(conn, s.name, self.stage_tmp, self.mirror_cols, extra="_cdc_updated_at = now()")
        if dead:
            self._fill(conn, self.dead_stage_tmp, self.dead_cols, ([*k, *state_row(r)] for k, r in dead))
            self._upsert(
                conn, s.dead_name, self.dead_stage_tmp, self.dead_cols, extra="_cdc_recorded_at = now()"
            )
        self._delete(conn, s.dead_name, [k for k, _ in visible] + gone)
        self._delete(conn, s.name, [k for k, _ in dead] + gone)
        self._insert_tombstones(conn, plan.tombstones)

    def _upsert(self, conn: Connection[Any], table: str, tmp: str, cols: list[str], extra: str) -> None:
        updates = [sql.SQL("{0} = EXCLUDED.{0}").format(ddl.ident(c)) for c in cols if c not in self.pk]
        query = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO UPDATE SET {}, {}").format(
            ddl.ident(self.spec.schema, table),
            ddl.column_list(cols),
            ddl.column_list(cols),
            ddl.ident(tmp),
            ddl.column_list(self.pk),
            sql.SQL(", ").join(updates),
            sql.SQL(extra),
        )
        conn.execute(query)

    def _delete(self, conn: Connection[Any], table: str, keys: list[Key]) -> None:
        if not keys:
            return
        self._fill(conn, self.keys_tmp, self.pk, keys)
        cond = sql.SQL(" AND ").join(sql.SQL("t.{0} = k.{0}").format(ddl.ident(c)) for c in self.pk)
        conn.execute(
            sql.SQL("DELETE FROM {} t USING {} k WHERE {}").format(
                ddl.ident(self.spec.schema, table), ddl.ident(self.keys_tmp), cond
            )
        )

    def _insert_tombstones(
        self, conn: Connection[Any], tombstones: list[PartitionDelete | RangeDelete]
    ) -> None:
        if not tombstones:
            return
        cols = [*self.part, "_cdc_kind", "_cdc_ts", "_cdc_range"]
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(
            ddl.ident(self.spec.schema, self.spec.tombstones_name), ddl.column_list(cols)
        )
        with conn.cursor().copy(query) as copy:
            for t in tombstones:
                part = [_adapt(self.types.get(c), c, v) for c, v in zip(self.part, t.partition, strict=True)]
                if isinstance(t, PartitionDelete):
                    copy.write_row([*part, "partition", t.ts, None])
                else:
                    copy.write_row([*part, "range", t.ts, Jsonb(encode_range(t))])

    # -- time ---------------------------------------------------------------------------------------------
    def expired(self, conn: Connection[Any], now_us: int, limit: int) -> dict[Key, RowState]:
        """Visible rows with a cell or marker whose TTL has passed (no row locks: the sweep takes the
        partitions' advisory locks and re-reads them, like a batch)."""
        s = self.spec
        query = sql.SQL(
            "SELECT {} FROM {} WHERE _cdc_expires_at <= %s ORDER BY _cdc_expires_at LIMIT %s"
        ).format(ddl.column_list(self.state_select), ddl.ident(s.schema, s.name))
        return dict(self.read_mirror(record) for record in conn.execute(query, (now_us, limit)))

    def purge(self, conn: Connection[Any], grace_s: int) -> int:
        """Forget dead rows and tombstones older than the grace period (like Cassandra's gc_grace_seconds)."""
        s = self.spec
        removed = 0
        for table in (s.dead_name, s.tombstones_name):
            cur = conn.execute(
                sql.SQL("DELETE FROM {} WHERE _cdc_recorded_at < now() - make_interval(secs => %s)").format(
                    ddl.ident(s.schema, table)
                ),
                (grace_s,),
            )
            removed += cur.rowcount
        return removed

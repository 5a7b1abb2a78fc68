"""SQL composition for mirror tables and the sink's own tables (pure; every identifier quoted).

Per replicated table ``ks.tbl`` (mirror ``"schema"."name"``):

- ``"schema"."name"``: the visible rows: primary key, every regular column natively typed, and bookkeeping in
  ``_cdc_``-prefixed columns: ``_cdc_cells`` (per-cell write timestamp, expiry, tombstone flag as
  ``{"col": [ts_us, expires_at_us | null, 0 | 1]}``), ``_cdc_marker`` / ``_cdc_marker_exp`` (row marker),
  ``_cdc_deleted_ts`` (row tombstone), ``_cdc_expires_at`` (next TTL expiry, for the sweep),
  ``_cdc_token`` (Murmur3 token of the partition key), ``_cdc_updated_at``.
- ``"schema"."_cdc_<name>_dead"``: bookkeeping of rows that are not visible (deleted or expired) but whose
  tombstones must be remembered for the grace period.
- ``"schema"."_cdc_<name>_tombstones"``: partition and range tombstones, by partition key.
"""

from __future__ import annotations

from psycopg import sql

from models.mirror_spec import ColumnSpec, MirrorSpec
from models.schema_diff import ColumnAction
from models.state_codec import STATE_COLUMNS

BOOKKEEPING: tuple[ColumnSpec, ...] = (
    ColumnSpec("_cdc_cells", "jsonb NOT NULL DEFAULT '{}'"),
    ColumnSpec("_cdc_marker", "bigint"),
    ColumnSpec("_cdc_marker_exp", "bigint"),
    ColumnSpec("_cdc_deleted_ts", "bigint"),
    ColumnSpec("_cdc_expires_at", "bigint"),
    ColumnSpec("_cdc_token", "bigint"),
    ColumnSpec("_cdc_updated_at", "timestamptz NOT NULL DEFAULT now()"),
)


def ident(*names: str) -> sql.Identifier:
    return sql.Identifier(*names)


def column_list(names: tuple[str, ...] | list[str]) -> sql.Composed:
    return sql.SQL(", ").join(ident(n) for n in names)


def _column_defs(columns: tuple[ColumnSpec, ...], not_null: bool = False) -> list[sql.Composable]:
    suffix = " NOT NULL" if not_null else ""
    return [sql.SQL("{} {}").format(ident(c.name), sql.SQL(c.pg_type + suffix)) for c in columns]


def _pk(spec: MirrorSpec) -> sql.Composed:
    return sql.SQL("PRIMARY KEY ({})").format(column_list([c.name for c in spec.primary_key]))


def create_schema(spec: MirrorSpec) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(spec.schema))


def create_mirror(spec: MirrorSpec) -> sql.Composed:
    parts = [
        *_column_defs(spec.primary_key, not_null=True),
        *_column_defs(spec.columns),
        *_column_defs(BOOKKEEPING),
        _pk(spec),
    ]
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        ident(spec.schema, spec.name), sql.SQL(", ").join(parts)
    )


def create_mirror_expiry_index(spec: MirrorSpec) -> sql.Composed:
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {} ON {} (_cdc_expires_at) WHERE _cdc_expires_at IS NOT NULL"
    ).format(ident(f"_cdc_{spec.name}_expiry_idx"), ident(spec.schema, spec.name))


def create_mirror_token_index(spec: MirrorSpec) -> sql.Composed:
    """Reconciliation reads a mirror by token range (``_cdc_token > a AND _cdc_token <= b``); built by the
    first reconciliation of the table, without blocking writes (outside a transaction)."""
    return sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} (_cdc_token)").format(
        ident(f"_cdc_{spec.name}_token_idx"), ident(spec.schema, spec.name)
    )


def create_dead(spec: MirrorSpec) -> sql.Composed:
    parts = [
        *_column_defs(spec.primary_key, not_null=True),
        *_column_defs(tuple(c for c in BOOKKEEPING if c.name in STATE_COLUMNS)),
        sql.SQL("_cdc_recorded_at timestamptz NOT NULL DEFAULT now()"),
        _pk(spec),
    ]
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        ident(spec.schema, spec.dead_name), sql.SQL(", ").join(parts)
    )


def create_tombstones(spec: MirrorSpec) -> sql.Composed:
    parts = [
        *_column_defs(spec.partition_key, not_null=True),
        sql.SQL("_cdc_kind text NOT NULL CHECK (_cdc_kind IN ('partition', 'range'))"),
        sql.SQL("_cdc_ts bigint NOT NULL"),
        sql.SQL("_cdc_range jsonb"),
        sql.SQL("_cdc_recorded_at timestamptz NOT NULL DEFAULT now()"),
    ]
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        ident(spec.schema, spec.tombstones_name), sql.SQL(", ").join(parts)
    )


def create_tombstones_index(spec: MirrorSpec) -> sql.Composed:
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
        ident(f"_cdc_{spec.name}_tombstones_pk_idx"),
        ident(spec.schema, spec.tombstones_name),
        column_list([c.name for c in spec.partition_key]),
    )


def mirror_ddl(spec: MirrorSpec) -> list[sql.Composed]:
    """Every statement that creates a mirror and its side tables (idempotent)."""
    return [
        create_schema(spec),
        create_mirror(spec),
        create_mirror_expiry_index(spec),
        create_dead(spec),
        create_tombstones(spec),
        create_tombstones_index(spec),
    ]


def column_statement(spec: MirrorSpec, action: ColumnAction) -> sql.Composed:
    """The mirror's statement for one :class:`models.schema_diff.ColumnAction` (types from our own mapping)."""
    table, column = ident(spec.schema, spec.name), ident(action.column)
    if action.action == "add":
        return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
            table, column, sql.SQL(action.pg_type or "")
        )
    if action.action == "drop":
        return sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(table, column)
    if action.action == "retype":
        return sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
            table, column, sql.SQL(action.pg_type or "")
        )
    return sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
        table, column, sql.Literal("dropped in Cassandra: kept, no longer written (cdc-cass-pg)")
    )


def rename_mirror(spec: MirrorSpec, suffix: str) -> list[sql.Composed]:
    """Move a mirror and its side tables aside (``<name><suffix>``), for ``cdc schema resolve --rebuild``."""
    return [
        sql.SQL("ALTER TABLE IF EXISTS {} RENAME TO {}").format(
            ident(spec.schema, name), ident(f"{name}{suffix}")
        )
        for name in (spec.name, spec.dead_name, spec.tombstones_name)
    ]


META_DDL: tuple[sql.SQL, ...] = (
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_checkpoints (
            group_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
            next_offset bigint NOT NULL, generation bigint NOT NULL DEFAULT 0,
            events bigint NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (group_id, topic, partition))"""
    ),
    sql.SQL("CREATE SEQUENCE IF NOT EXISTS _cdc_generation_seq"),
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_dlq_records (
            id bigserial PRIMARY KEY, topic text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL,
            error_type text NOT NULL, error_message text NOT NULL, key bytea, value bytea,
            headers jsonb NOT NULL DEFAULT '{}', recorded_at timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz, replayed_at timestamptz, UNIQUE (topic, partition, "offset"))"""
    ),
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_schema_metadata (
            id bigserial PRIMARY KEY, keyspace text NOT NULL, "table" text NOT NULL, version integer NOT NULL,
            action text NOT NULL, cql_schema jsonb, changes jsonb NOT NULL DEFAULT '[]',
            ddl text NOT NULL DEFAULT '', detail text NOT NULL DEFAULT '',
            detected_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz,
            UNIQUE (keyspace, "table", version))"""
    ),
    # Upgrades of sink tables created by earlier versions.
    sql.SQL("ALTER TABLE _cdc_checkpoints ADD COLUMN IF NOT EXISTS events bigint NOT NULL DEFAULT 0"),
    sql.SQL("ALTER TABLE _cdc_dlq_records ADD COLUMN IF NOT EXISTS published_at timestamptz"),
    # Dead-letter replay (app/dlq): status, attempts and history per record, and the replay jobs.
    sql.SQL(
        """ALTER TABLE _cdc_dlq_records
            ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'pending' CHECK (status IN
                ('pending', 'replaying', 'replayed', 'resolved', 'ignored', 'failed')),
            ADD COLUMN IF NOT EXISTS retry_count integer NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS last_error text,
            ADD COLUMN IF NOT EXISTS resolution_note text,
            ADD COLUMN IF NOT EXISTS replay_id bigint,
            ADD COLUMN IF NOT EXISTS history jsonb NOT NULL DEFAULT '[]',
            ADD COLUMN IF NOT EXISTS truncated boolean NOT NULL DEFAULT false,
            ADD COLUMN IF NOT EXISTS publish_attempts integer NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS publish_error text,
            ADD COLUMN IF NOT EXISTS publish_owner text,
            ADD COLUMN IF NOT EXISTS publish_lease timestamptz"""
    ),
    sql.SQL("CREATE INDEX IF NOT EXISTS _cdc_dlq_records_status_idx ON _cdc_dlq_records (status, id)"),
    sql.SQL(
        "CREATE INDEX IF NOT EXISTS _cdc_dlq_records_unpublished_idx ON _cdc_dlq_records (id) "
        "WHERE published_at IS NULL"
    ),
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_dlq_replays (
            id bigserial PRIMARY KEY, filter jsonb NOT NULL, mode text NOT NULL
                CHECK (mode IN ('immediate', 'scheduled', 'rate-limited')),
            rate double precision, scheduled_at timestamptz NOT NULL DEFAULT now(),
            status text NOT NULL DEFAULT 'scheduled'
                CHECK (status IN ('scheduled', 'running', 'done', 'failed', 'cancelled')),
            requested_by text NOT NULL DEFAULT '', owner text, heartbeat_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz, finished_at timestamptz,
            matched integer NOT NULL DEFAULT 0, replayed integer NOT NULL DEFAULT 0,
            failed integer NOT NULL DEFAULT 0, error text, taken_at timestamptz)"""
    ),
    sql.SQL("ALTER TABLE _cdc_dlq_replays ADD COLUMN IF NOT EXISTS taken_at timestamptz"),
    # Reconciliation (app/reconcile): jobs and the mismatches they found.
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_reconciliation_jobs (
            id bigserial PRIMARY KEY, job_type text NOT NULL DEFAULT 'manual', strategy text NOT NULL,
            tables jsonb NOT NULL DEFAULT '[]', status text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'done', 'failed')),
            started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz,
            cassandra_rows bigint NOT NULL DEFAULT 0, postgres_rows bigint NOT NULL DEFAULT 0,
            ranges integer NOT NULL DEFAULT 0, mismatches integer NOT NULL DEFAULT 0,
            in_flight integer NOT NULL DEFAULT 0, drift_percentage double precision NOT NULL DEFAULT 0,
            errors jsonb NOT NULL DEFAULT '[]', alert_fired boolean NOT NULL DEFAULT false,
            report jsonb NOT NULL DEFAULT '{}')"""
    ),
    sql.SQL("ALTER TABLE _cdc_reconciliation_jobs ADD COLUMN IF NOT EXISTS owner text NOT NULL DEFAULT ''"),
    sql.SQL(
        "ALTER TABLE _cdc_reconciliation_jobs ADD COLUMN IF NOT EXISTS options jsonb NOT NULL DEFAULT '{}'"
    ),
    sql.SQL("ALTER TABLE _cdc_reconciliation_jobs ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz"),
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_reconciliation_ranges (
            job_id bigint NOT NULL REFERENCES _cdc_reconciliation_jobs (id) ON DELETE CASCADE,
            "table" text NOT NULL, range_start bigint NOT NULL, range_end bigint NOT NULL,
            status text NOT NULL CHECK (status IN ('done', 'failed')),
            cassandra_rows bigint NOT NULL DEFAULT 0, postgres_rows bigint NOT NULL DEFAULT 0,
            found jsonb NOT NULL DEFAULT '[]', error text, finished_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (job_id, "table", range_start))"""
    ),
    sql.SQL(
        "CREATE INDEX IF NOT EXISTS _cdc_reconciliation_jobs_started_idx ON _cdc_reconciliation_jobs (started_at)"
    ),
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_reconciliation_mismatches (
            id bigserial PRIMARY KEY, job_id bigint NOT NULL REFERENCES _cdc_reconciliation_jobs (id),
            keyspace text NOT NULL, "table" text NOT NULL, primary_key jsonb NOT NULL,
            mismatch_type text NOT NULL
                CHECK (mismatch_type IN ('MISSING_IN_POSTGRES', 'MISSING_IN_CASSANDRA', 'DATA_MISMATCH')),
            columns jsonb NOT NULL DEFAULT '[]', cassandra_data jsonb, postgres_data jsonb,
            cassandra_checksum text, postgres_checksum text,
            resolution_status text NOT NULL DEFAULT 'PENDING'
                CHECK (resolution_status IN ('PENDING', 'AUTO_RESOLVED', 'MANUAL_RESOLVED', 'IGNORED')),
            detected_at timestamptz NOT NULL DEFAULT now(), resolved_at timestamptz, resolution_note text)"""
    ),
    sql.SQL("ALTER TABLE _cdc_reconciliation_mismatches ADD COLUMN IF NOT EXISTS resolution_note text"),
    # Backfill (app/backfill): jobs, and each table's token ranges with their progress.
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_backfill_jobs (
            id bigserial PRIMARY KEY, tables jsonb NOT NULL DEFAULT '[]', status text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'done', 'failed')),
            options jsonb NOT NULL DEFAULT '{}', owner text NOT NULL DEFAULT '',
            started_at timestamptz NOT NULL DEFAULT now(), heartbeat_at timestamptz, finished_at timestamptz,
            rows bigint NOT NULL DEFAULT 0, errors jsonb NOT NULL DEFAULT '[]', report jsonb NOT NULL DEFAULT '{}')"""
    ),
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_backfill_ranges (
            job_id bigint NOT NULL REFERENCES _cdc_backfill_jobs (id) ON DELETE CASCADE,
            "table" text NOT NULL, range_start bigint NOT NULL, range_end bigint NOT NULL,
            ordinal integer NOT NULL, position bigint, status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'done', 'failed')),
            rows bigint NOT NULL DEFAULT 0, batches integer NOT NULL DEFAULT 0, error text,
            updated_at timestamptz, PRIMARY KEY (job_id, "table", range_start))"""
    ),
    # Transforms (models/transforms.py): the plan each mirror's rows are written under.
    sql.SQL(
        """CREATE TABLE IF NOT EXISTS _cdc_transform_plans (
            keyspace text NOT NULL, "table" text NOT NULL, fingerprint text NOT NULL,
            rules jsonb NOT NULL DEFAULT '{}', recorded_at timestamptz NOT NULL DEFAULT now(),
            previous_fingerprint text, changed_at timestamptz, PRIMARY KEY (keyspace, "table"))"""
    ),
    sql.SQL(
        """CREATE INDEX IF NOT EXISTS _cdc_reconciliation_mismatches_job_idx
            ON _cdc_reconciliation_mismatches (job_id, keyspace, "table")"""
    ),
)

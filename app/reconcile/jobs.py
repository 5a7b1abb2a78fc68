"""A reconciliation job: its tables checked one after the other (each table's ranges in parallel), results and
mismatches recorded in PostgreSQL, metrics updated, mismatches repaired when asked. Shared by ``cdc reconcile``,
``POST /reconciliation/trigger`` and the hourly schedule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from app import metrics, pg_connection, tracing
from app.reconcile import store
from app.reconcile.engine import Strategy, TableCheck, TableReport, run_table
from app.settings import Settings

ProgressFactory = Callable[[str, int], Callable[[int, int], None]]
"""``(table, ranges) -> update(ranges done, rows read)``."""


@dataclass(frozen=True)
class JobOptions:
    strategy: Strategy = Strategy.CHECKSUM
    ranges: int = 256
    concurrency: int = 4
    row_threshold: int = 2000
    recheck_after_s: float = 5.0
    lag_allowance_s: float = 30.0
    repair: bool = False
    job_type: str = "manual"
    sample_size: int = 1000
    """SAMPLE: partitions compared."""
    since_us: int | None = None
    until_us: int | None = None
    """TIMESTAMP_RANGE: the window of write times (µs since the epoch; until defaults to now)."""

    def window(self) -> tuple[int, int] | None:
        if self.strategy is not Strategy.TIMESTAMP_RANGE:
            return None
        if self.since_us is None:
            raise ValueError("TIMESTAMP_RANGE needs since (a time, or a duration ago such as 2h)")
        return self.since_us, self.until_us if self.until_us is not None else int(time.time() * 1_000_000)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (stored with the job, for ``--rerun``)."""
        return {**self.__dict__, "strategy": self.strategy.value}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> JobOptions:
        known = {k: v for k, v in body.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "strategy": Strategy(known.get("strategy", "CHECKSUM"))})

    @classmethod
    def from_settings(cls, settings: Settings, job_type: str, **overrides: Any) -> JobOptions:
        r = settings.reconcile
        base = cls(
            Strategy(r.strategy),
            r.ranges,
            r.concurrency,
            r.row_threshold,
            r.recheck_after_s,
            r.lag_allowance_s,
            False,
            job_type,
        )
        return cls(**{**base.__dict__, **overrides})


def checked_tables(given: Sequence[str]) -> list[str]:
    """``keyspace.table`` names, or ValueError naming the first that is not one."""
    bad = [t for t in given if "." not in t]
    if bad:
        raise ValueError(f"table {bad[0]!r}: use keyspace.table")
    return list(given)


def mirrored_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Every table the worker mirrors (it recorded a schema version of each)."""
    rows = conn.execute("SELECT DISTINCT keyspace || '.' || \"table\" FROM _cdc_schema_metadata ORDER BY 1")
    return [r[0] for r in rows]


def start(settings: Settings, tables: Sequence[str], options: JobOptions) -> tuple[int, list[str]]:
    """Record a new job (``running``); its id and its tables (all mirrored ones when none are given)."""
    from app.sink.checkpoints import ensure_meta

    with pg_connection.connect(settings, autocommit=True) as conn:
        ensure_meta(conn)
        names = list(tables) or mirrored_tables(conn)
        job_id = store.start_job(conn, options.strategy.value, names, options.job_type, "", options.as_dict())
        return job_id, names


@tracing.traced("cdc.reconcile.job")
def run(
    settings: Settings,
    tables: Sequence[str],
    options: JobOptions,
    progress: ProgressFactory = lambda table, total: lambda done, rows: None,
    job_id: int | None = None,
) -> dict[str, Any]:
    """Run a job to its end (blocking); the job's final row. A table that fails is reported in ``errors``
    and the others still run."""
    from app.cassandra_session import connect

    if job_id is None:
        job_id, tables = start(settings, tables, options)
    tracing.annotate(job_id=job_id, tables=list(tables), strategy=str(options.strategy))
    cluster, session = connect(settings.cassandra)
    pool: ConnectionPool[Any] = ConnectionPool(
        settings.postgres.dsn.get_secret_value(),
        kwargs=lambda: pg_connection.connect_kwargs(settings),
        min_size=1,
        max_size=options.concurrency + 1,
        open=True,
    )
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        with pg_connection.connect(settings, autocommit=True) as conn:
            for name in tables:
                try:
                    summary = _table(settings, cluster, session, pool, conn, job_id, name, options, progress)
                except Exception as error:  # one table's failure is reported, the others still run
                    errors.append(f"{name}: {type(error).__name__}: {error}")
                    metrics.reconciliation_jobs.labels(name, "failed").inc()
                    continue
                errors.extend(f"{name}: {e}" for e in summary.pop("errors"))
                results.append(summary)
            return store.finish_job(conn, job_id, results, errors)
    finally:
        pool.close()
        cluster.shutdown()


def _table(
    settings: Settings,
    cluster: Any,
    session: Any,
    pool: ConnectionPool[Any],
    conn: psycopg.Connection[Any],
    job_id: int,
    name: str,
    options: JobOptions,
    progress: ProgressFactory,
) -> dict[str, Any]:
    from app.cassandra_schema import table_schema
    from app.sink import ddl
    from app.sink.transform_plans import mark_followed
    from models.mirror_spec import spec_for
    from models.transforms import compile_plan

    keyspace, _, table = name.partition(".")
    schema = table_schema(cluster, keyspace, table)
    plan = compile_plan(schema, settings.transform_rules, settings.hash_key) if settings.transforms else None
    spec = spec_for(schema, settings.sink.table_targets.get(name), plan)
    conn.execute(ddl.create_mirror_token_index(spec))
    update = progress(name, options.sample_size if options.strategy is Strategy.SAMPLE else options.ranges)
    report = run_table(
        TableCheck(session, pool, schema, spec, options.row_threshold),
        options.strategy,
        ranges=options.ranges,
        concurrency=options.concurrency,
        recheck_after_s=options.recheck_after_s,
        lag_allowance_s=options.lag_allowance_s,
        progress=lambda done, total, rows: update(done, rows),
        sample=(options.sample_size, job_id),
        window_us=options.window(),
        resumed=store.done_ranges(conn, job_id, name),
        on_range=lambda r, found, error: store.save_range(conn, job_id, name, r, found, error),
    )
    store.record_mismatches(conn, job_id, name, report.mismatches)
    summary = store.summary(report)
    summary["errors"] = list(report.errors)
    # Every row matched Cassandra's rows under this plan (none still in flight): a recorded rule change of
    # the mirror is settled.
    clean = options.strategy is Strategy.CHECKSUM and not (
        report.mismatches or report.in_flight or report.errors
    )
    summary["transforms_followed"] = (
        clean
        and plan is not None
        and not plan.empty
        and mark_followed(conn, keyspace, table, plan.fingerprint)
    )
    auto = settings.reconcile.auto_repair
    if (options.repair or name in auto or "*" in auto) and report.mismatches:
        summary["repaired"] = _repair(settings, session, schema, report, job_id, name)
    _observe(summary, report)
    return summary


def _observe(summary: dict[str, Any], report: TableReport) -> None:
    table = summary["table"]
    metrics.reconciliation_drift.labels(table).set(summary["drift_percentage"])
    metrics.reconciliation_cassandra_rows.labels(table).set(summary["cassandra_rows"])
    metrics.reconciliation_postgres_rows.labels(table).set(summary["postgres_rows"])
    metrics.reconciliation_duration.labels(table).set(summary["seconds"])
    for kind, n in summary["by_type"].items():
        metrics.reconciliation_mismatches.labels(table, kind).inc(n)
    if summary.get("repaired"):
        metrics.reconciliation_repaired.labels(table).inc(summary["repaired"])
    metrics.reconciliation_jobs.labels(table, "drift" if report.mismatches else "clean").inc()


def _repair(
    settings: Settings, session: Any, schema: Any, report: TableReport, job_id: int, name: str
) -> int:
    """Repair a table's mismatches (one transaction, the stream's apply path) and mark them AUTO_RESOLVED."""
    from app.reconcile.repair import repair_table
    from app.runtime import Runtime

    runtime = Runtime(settings)
    try:
        applier = asyncio.run(runtime.ensure_started())
        assert runtime.pool is not None
        observed = int(time.time() * 1_000_000)
        with runtime.pool.connection() as conn, conn.transaction():
            repair_table(conn, applier, session, schema, report.mismatches, observed, observed)
            return store.resolved(conn, job_id, name)
    finally:
        runtime.close()


def rerun(
    settings: Settings, job_id: int, progress: ProgressFactory = lambda table, total: lambda done, rows: None
) -> dict[str, Any]:
    """Run a job again: only its ranges not finished (failed, or never reached before its runner stopped)
    are read; the findings of the others come from PostgreSQL."""
    with pg_connection.connect(settings, autocommit=True) as conn:
        found = store.job(conn, job_id)
        if found is None:
            raise LookupError(f"no reconciliation job {job_id}")
        store.reopen(conn, job_id)
    options = JobOptions.from_dict(found["options"] or {"strategy": found["strategy"]})
    return run(settings, found["tables"], options, progress, job_id=job_id)

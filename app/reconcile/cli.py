"""``cdc reconcile``: compare tables between Cassandra and their mirrors by token range.

Exit codes: 0 no drift; 1 an error stopped it; 2 bad usage; 5 drift found. ``--json`` prints one JSON document
on stdout (stable keys); progress goes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg
from psycopg_pool import ConnectionPool

from app.logging import configured_settings
from app.settings import Settings
from models.dlq import decoded

EXIT_ERROR, EXIT_DRIFT = 1, 5


def _json(value: Any) -> str:
    return orjson.dumps(
        value,
        default=lambda v: decoded(bytes(v)) if isinstance(v, bytes | memoryview) else str(v),
        option=orjson.OPT_SORT_KEYS,
    ).decode()


def peak_rss_mib() -> float | None:
    """This process's peak resident memory (VmHWM: since its exec, unlike getrusage after a fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _tables(conn: psycopg.Connection[Any], given: tuple[str, ...]) -> list[str]:
    if given:
        bad = [t for t in given if "." not in t]
        if bad:
            raise click.UsageError(f"--table {bad[0]}: use keyspace.table")
        return list(given)
    rows = conn.execute("SELECT DISTINCT keyspace || '.' || \"table\" FROM _cdc_schema_metadata ORDER BY 1")
    return [r[0] for r in rows]


@click.command(name="reconcile")
@click.option(
    "--table", "tables", multiple=True, help="keyspace.table (repeatable; default: every mirrored table)."
)
@click.option(
    "--strategy", type=click.Choice(["CHECKSUM", "ROW_COUNT"]), default="CHECKSUM", show_default=True
)
@click.option(
    "--ranges",
    type=click.IntRange(1, 1_000_000),
    default=64,
    show_default=True,
    help="Token ranges the ring is split into.",
)
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--row-threshold",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    help="Bisect a differing range until it holds at most this many rows, then compare rows.",
)
@click.option(
    "--recheck-after",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds before differences are checked again (only persisting ones count).",
)
@click.option(
    "--lag-allowance",
    type=float,
    default=30.0,
    show_default=True,
    help="Writes newer than this many seconds before the recheck may still be in flight.",
)
@click.option("--repair", is_flag=True, help="Repair every mismatch found through the stream's apply path.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reconcile(
    tables: tuple[str, ...],
    strategy: str,
    ranges: int,
    concurrency: int,
    row_threshold: int,
    recheck_after: float,
    lag_allowance: float,
    repair: bool,
    as_json: bool,
) -> None:
    """Compare Cassandra with PostgreSQL: CHECKSUM finds every drifted row; ROW_COUNT counts per range."""
    settings: Settings = configured_settings()
    from app.reconcile.engine import Strategy

    options = {
        "ranges": ranges,
        "concurrency": concurrency,
        "recheck_after_s": recheck_after,
        "lag_allowance_s": lag_allowance,
    }
    results, errors, job = _run(settings, tables, Strategy(strategy), row_threshold, options, repair)
    if as_json:
        click.echo(
            _json(
                {
                    "peak_rss_mib": peak_rss_mib(),
                    "job_id": job["id"],
                    "status": job["status"],
                    "drift_percentage": job["drift_percentage"],
                    "tables": results,
                    "errors": errors,
                }
            )
        )
    else:
        for r in results:
            click.echo(
                f"{r['table']}: {r['strategy']} cassandra={r['cassandra_rows']} postgres={r['postgres_rows']} "
                f"mismatches={r['mismatches']} {r['by_type']} in_flight={r['in_flight']} "
                f"drift={r['drift_percentage']}% in {r['seconds']}s"
            )
        click.echo(f"job {job['id']} {job['status']}" + (f"; errors: {errors}" if errors else ""))
    if errors:
        sys.exit(EXIT_ERROR)
    if any((r["mismatches"] and not repair) or r["count_difference"] for r in results):
        sys.exit(EXIT_DRIFT)


def _run(
    settings: Settings,
    given: tuple[str, ...],
    strategy: Any,
    row_threshold: int,
    options: dict[str, Any],
    repair: bool = False,
) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    from app.cassandra_session import connect
    from app.reconcile import store
    from app.sink.checkpoints import ensure_meta

    dsn = settings.postgres.dsn.get_secret_value()
    cluster, session = connect(settings.cassandra)
    pool: ConnectionPool[Any] = ConnectionPool(
        dsn, min_size=1, max_size=options["concurrency"] + 1, open=True
    )
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            ensure_meta(conn)
            names = _tables(conn, given)
            job_id = store.start_job(conn, strategy.value, names)
            for name in names:
                try:
                    schema, report = _check_one(
                        settings, cluster, session, pool, conn, name, strategy, row_threshold, options
                    )
                    store.record_mismatches(conn, job_id, name, report.mismatches)
                    summary = store.summary(report)
                    if repair and report.mismatches:
                        summary["repaired"] = _repair(settings, session, schema, report, job_id, name)
                    results.append(summary)
                except Exception as error:  # one table's failure is reported, the others still run
                    errors.append(f"{name}: {type(error).__name__}: {error}")
            job = store.finish_job(conn, job_id, results, errors)
    finally:
        pool.close()
        cluster.shutdown()
    return results, errors, job


def _check_one(
    settings: Settings,
    cluster: Any,
    session: Any,
    pool: ConnectionPool[Any],
    conn: Any,
    name: str,
    strategy: Any,
    row_threshold: int,
    options: dict[str, Any],
) -> Any:
    from app.cassandra_schema import table_schema
    from app.reconcile.engine import TableCheck, run_table
    from app.sink import ddl
    from models.mirror_spec import spec_for

    keyspace, _, table = name.partition(".")
    schema = table_schema(cluster, keyspace, table)
    spec = spec_for(schema, settings.sink.table_targets.get(name))
    conn.execute(ddl.create_mirror_token_index(spec))
    with click.progressbar(
        length=options["ranges"], label=name, file=sys.stderr, show_pos=True, show_eta=True
    ) as bar:
        seen = [0]

        def progress(done: int, total: int, rows: int) -> None:
            bar.update(done - seen[0])
            seen[0] = done

        report = run_table(
            TableCheck(session, pool, schema, spec, row_threshold), strategy, progress=progress, **options
        )
    return schema, report


def _repair(settings: Settings, session: Any, schema: Any, report: Any, job_id: int, name: str) -> int:
    """Repair a table's mismatches (one transaction, the stream's apply path) and mark them AUTO_RESOLVED."""
    import asyncio
    import time

    from app.reconcile import store
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

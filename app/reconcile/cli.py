"""``cdc reconcile``: compare tables between Cassandra and their mirrors by token range.

Exit codes: 0 no drift; 1 an error stopped it; 2 bad usage; 5 drift found. ``--json`` prints one JSON document
on stdout (stable keys); progress goes to stderr.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from app import pg_connection
from app.dlq.cli import json_text
from app.logging import configured_settings
from app.settings import Settings

EXIT_ERROR, EXIT_DRIFT = 1, 5


def peak_rss_mib() -> float | None:
    """This process's peak resident memory (VmHWM: since its exec, unlike getrusage after a fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _micros(text: str | None) -> int | None:
    if text is None:
        return None
    from datetime import UTC, datetime

    from models.dlq import FilterError, parse_when

    try:
        return int(parse_when(text, datetime.now(UTC)).timestamp() * 1_000_000)
    except (FilterError, ValueError) as error:
        raise click.UsageError(str(error)) from None


def progress_bar(table: str, total: int) -> Any:
    """A progress bar on stderr for one table's ranges (done, ETA, rows/s): ``update(done, rows)``."""
    bar = click.progressbar(
        length=total, label=table, file=sys.stderr, show_pos=True, show_eta=True, item_show_func=lambda s: s
    )
    bar.__enter__()
    seen = [0]
    started = time.monotonic()

    def update(done: int, rows: int) -> None:
        pace = rows / max(time.monotonic() - started, 1e-6)
        bar.update(done - seen[0], f"{pace:,.0f} rows/s")
        seen[0] = done
        if done >= total:
            bar.__exit__(None, None, None)

    return update


@click.group(name="reconcile", invoke_without_command=True)
@click.option(
    "--table", "tables", multiple=True, help="keyspace.table (repeatable; default: every mirrored table)."
)
@click.option(
    "--strategy",
    type=click.Choice(["CHECKSUM", "ROW_COUNT", "SAMPLE", "TIMESTAMP_RANGE"]),
    help="Default: CDC_RECONCILE__STRATEGY (CHECKSUM).",
)
@click.option(
    "--ranges",
    type=click.IntRange(1, 1_000_000),
    help="Token ranges the ring is split into (default: CDC_RECONCILE__RANGES, 256).",
)
@click.option("--concurrency", type=click.IntRange(1, 64), help="Ranges read at once (default 4).")
@click.option(
    "--row-threshold",
    type=click.IntRange(1, 1_000_000),
    help="Bisect a differing range until it holds at most this many rows, then compare rows (default 2000).",
)
@click.option(
    "--recheck-after",
    type=float,
    help="Seconds before differences are checked again; only persisting ones count (default 5).",
)
@click.option(
    "--lag-allowance",
    type=float,
    help="A row written this many seconds before the recheck may still be in flight (default 30).",
)
@click.option("--sample-size", type=click.IntRange(1, 10_000_000), help="SAMPLE: partitions compared (1000).")
@click.option(
    "--since", help="TIMESTAMP_RANGE: rows written since (ISO-8601 with zone, or a duration ago: 2h)."
)
@click.option("--until", help="TIMESTAMP_RANGE: rows written before (default: now).")
@click.option("--repair", is_flag=True, help="Repair every mismatch found through the stream's apply path.")
@click.option(
    "--rerun",
    type=int,
    help="Run job JOB again with its own options: only its failed or unfinished ranges are read.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def reconcile(
    ctx: click.Context,
    tables: tuple[str, ...],
    strategy: str | None,
    ranges: int | None,
    concurrency: int | None,
    row_threshold: int | None,
    recheck_after: float | None,
    lag_allowance: float | None,
    sample_size: int | None,
    since: str | None,
    until: str | None,
    repair: bool,
    rerun: int | None,
    as_json: bool,
) -> None:
    """Compare Cassandra with PostgreSQL: CHECKSUM finds every drifted row; ROW_COUNT counts per range.

    `cdc reconcile jobs` and `cdc reconcile mismatches` list what earlier jobs did."""
    settings: Settings = configured_settings()
    if ctx.invoked_subcommand is not None:
        return
    from app.reconcile import jobs
    from app.reconcile.engine import Strategy

    given_options = {
        "strategy": Strategy(strategy) if strategy else None,
        "ranges": ranges,
        "concurrency": concurrency,
        "row_threshold": row_threshold,
        "recheck_after_s": recheck_after,
        "lag_allowance_s": lag_allowance,
        "sample_size": sample_size,
        "since_us": _micros(since),
        "until_us": _micros(until),
    }
    overrides = {k: v for k, v in given_options.items() if v is not None}
    options = jobs.JobOptions.from_settings(settings, "manual", repair=repair, **overrides)
    try:
        given = jobs.checked_tables(tables)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if rerun is not None:
        try:
            job = jobs.rerun(settings, rerun, progress_bar)
        except LookupError as error:
            raise click.UsageError(str(error)) from None
    else:
        job = jobs.run(settings, given, options, progress_bar)
    results, errors = job["report"]["tables"], job["errors"]
    if as_json:
        click.echo(
            json_text(
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


@reconcile.command(name="jobs")
@click.option("--table", help="Only jobs of keyspace.table.")
@click.option("--status", type=click.Choice(["running", "done", "failed"]))
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--after", type=int, default=0, help="Page on: only ids greater than this.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def jobs_command(table: str | None, status: str | None, limit: int, after: int, as_json: bool) -> None:
    """Reconciliation jobs, oldest first."""
    from app.reconcile import store

    rows = _read(store.jobs, {"table": table, "status": status}, limit, after)
    if as_json:
        click.echo(json_text({"jobs": rows, "next_after": rows[-1]["id"] if len(rows) == limit else None}))
        return
    for j in rows:
        click.echo(
            f"{j['id']:>6} {j['status']:<8} {j['job_type']:<9} {j['strategy']:<15} {j['started_at']:%Y-%m-%d %H:%M:%S}"
            f" mismatches={j['mismatches']} drift={j['drift_percentage']}% {','.join(j['tables'])}"
        )


@reconcile.command(name="mismatches")
@click.option("--job", "job_id", type=int, help="Only this job's.")
@click.option("--table", help="Only keyspace.table's.")
@click.option(
    "--type", "kind", type=click.Choice(["MISSING_IN_POSTGRES", "MISSING_IN_CASSANDRA", "DATA_MISMATCH"])
)
@click.option("--status", type=click.Choice(["PENDING", "AUTO_RESOLVED", "MANUAL_RESOLVED", "IGNORED"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--after", type=int, default=0, help="Page on: only ids greater than this.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def mismatches_command(
    job_id: int | None,
    table: str | None,
    kind: str | None,
    status: str | None,
    limit: int,
    after: int,
    as_json: bool,
) -> None:
    """Mismatches found by reconciliation, oldest first."""
    from app.reconcile import store

    filters = {"job_id": job_id, "table": table, "type": kind, "status": status}
    rows = _read(store.mismatches, filters, limit, after)
    if as_json:
        click.echo(
            json_text({"mismatches": rows, "next_after": rows[-1]["id"] if len(rows) == limit else None})
        )
        return
    for m in rows:
        click.echo(
            f"{m['id']:>8} job {m['job_id']:<5} {m['mismatch_type']:<21} {m['keyspace']}.{m['table']} "
            f"{json_text(m['primary_key'])} {m['resolution_status']} {','.join(m['columns'])}"
        )


def _read(fn: Any, filters: dict[str, Any], limit: int, after: int) -> list[dict[str, Any]]:

    from app.settings import get_settings
    from app.sink.checkpoints import ensure_meta

    with pg_connection.connect(get_settings(), autocommit=True) as conn:
        ensure_meta(conn)
        rows: list[dict[str, Any]] = fn(
            conn, {k: v for k, v in filters.items() if v is not None}, limit, after
        )
        return rows

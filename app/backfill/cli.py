"""``cdc backfill``: mirror the rows Cassandra already holds, while the stream runs.

Exit codes: 0 every range applied; 1 a range or table failed (``--resume JOB`` tries it again); 2 bad usage.
``--json`` prints one JSON document on stdout (stable keys); progress goes to stderr.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from app import pg_connection
from app.dlq.cli import json_text
from app.logging import configured_settings
from app.reconcile.cli import peak_rss_mib, progress_bar
from app.settings import Settings

EXIT_FAILED = 1


@click.command(name="backfill")
@click.argument("tables", nargs=-1)
@click.option("--parallel", type=click.IntRange(1, 64), help="Ranges applied at once (default 4).")
@click.option("--rate", type=click.FloatRange(min=1), help="At most this many rows per second.")
@click.option(
    "--ranges",
    type=click.IntRange(1, 1_000_000),
    help="Token ranges per table (default 256): the unit of resume.",
)
@click.option("--page-size", type=click.IntRange(10, 100_000), help="Rows per Cassandra page (default 1000).")
@click.option("--batch-rows", type=click.IntRange(1, 100_000), help="Rows per transaction (default 2000).")
@click.option(
    "--consistency",
    type=click.Choice(["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL"]),
    help="Cassandra read consistency (default LOCAL_QUORUM).",
)
@click.option(
    "--resume",
    "resume",
    type=int,
    help="Finish job JOB: only its ranges not done, each after its last batch.",
)
@click.option("--show", "show", type=int, help="Print job JOB's progress and exit.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def backfill(
    tables: tuple[str, ...],
    parallel: int | None,
    rate: float | None,
    ranges: int | None,
    page_size: int | None,
    batch_rows: int | None,
    consistency: str | None,
    resume: int | None,
    show: int | None,
    as_json: bool,
) -> None:
    """Copy existing rows of TABLES (keyspace.table ...) from Cassandra into their mirrors, merged with the
    stream by write time (README, Backfill)."""
    settings: Settings = configured_settings()
    from app.backfill import runner

    if show is not None:
        _show(settings, show, as_json)
        return
    if resume is not None:
        if tables:
            raise click.UsageError("--resume JOB takes no tables (the job has its own)")
        job_id = resume
    else:
        options = runner.BackfillOptions.from_settings(
            settings,
            parallel=parallel,
            rate=rate,
            ranges=ranges,
            page_size=page_size,
            batch_rows=batch_rows,
            consistency=consistency,
        )
        try:
            job_id = runner.start(settings, tables, options, _owner(settings))
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if not as_json:
        click.echo(f"backfill job {job_id}", err=True)
    try:
        job = runner.run(settings, job_id, progress_bar, _owner(settings))
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    _report(job, as_json)
    if job["errors"]:
        sys.exit(EXIT_FAILED)


def _owner(settings: Settings) -> str:
    import os
    import socket

    return f"{settings.app_id}-backfill@{socket.gethostname()}:{os.getpid()}"


def summary(job: dict[str, Any]) -> dict[str, Any]:
    """A finished job as stable JSON."""
    return {
        "job_id": job["id"],
        "status": job["status"],
        "rows": job["rows"],
        "tables": job["report"].get("tables", []),
        "errors": job["errors"],
        "peak_rss_mib": peak_rss_mib(),
    }


def _report(job: dict[str, Any], as_json: bool) -> None:
    body = summary(job)
    if as_json:
        click.echo(json_text(body))
        return
    for t in body["tables"]:
        click.echo(
            f"{t['table']}: {t['rows']} rows ({t['rows_this_run']} this run) in {t['seconds']}s "
            f"({t['rows_per_second']} rows/s), ranges {t['ranges_done']}/{t['ranges']} done, "
            f"{t['ranges_failed']} failed"
        )
    errors = body["errors"]
    click.echo(f"job {body['job_id']} {body['status']}" + (f"; errors: {errors}" if errors else ""))


def _show(settings: Settings, job_id: int, as_json: bool) -> None:

    from app.backfill import store
    from app.sink.checkpoints import ensure_meta

    with pg_connection.connect(settings, autocommit=True) as conn:
        ensure_meta(conn)
        found = store.job(conn, job_id)
    if found is None:
        raise click.UsageError(f"no backfill job {job_id}")
    if as_json:
        click.echo(json_text(found))
        return
    click.echo(
        f"job {job_id} {found['status']} (owner {found['owner'] or '-'}), started {found['started_at']}"
    )
    for p in found["progress"]:
        click.echo(
            f"  {p['table']}: {p['rows']} rows, ranges {p['ranges_done']}/{p['ranges']} done, "
            f"{p['ranges_failed']} failed"
        )

"""``cdc dlq``: list, inspect, replay, resolve, ignore and purge dead letters.

Exit codes: 0 done; 1 an error stopped it; 2 bad usage; 3 not found; 4 a replay finished with records that
failed again (they keep their new reason, ``status = failed``). ``--json`` prints one JSON document on stdout
(stable keys); progress goes to stderr.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import click
import orjson
import psycopg

from app import pg_connection
from app.dlq import store
from app.dlq.sealing import opened, sealer_for
from app.logging import configured_settings
from app.settings import Settings, get_settings
from models.dlq import (
    CLOSED,
    REPLAYABLE,
    STATUSES,
    DlqFilter,
    FilterError,
    Mode,
    ReplayRequest,
    decoded,
    parse_duration,
    parse_when,
)

EXIT_ERROR, EXIT_NOT_FOUND, EXIT_PARTIAL = 1, 3, 4


def json_text(value: Any) -> str:
    """The CLIs' ``--json`` document: sorted keys, payloads decoded, durations in seconds, anything else
    orjson does not know as text."""
    return orjson.dumps(value, default=_plain, option=orjson.OPT_SORT_KEYS).decode()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return decoded(bytes(value))
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


@contextmanager
def _connection(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    from app.sink.checkpoints import ensure_meta

    with pg_connection.connect(settings, autocommit=True) as conn:
        ensure_meta(conn)
        yield conn


def filters(func: Any) -> Any:
    """The options every selecting command shares."""
    for opt in reversed(
        [
            click.option("--id", "ids", type=int, multiple=True, help="Only these ids (repeatable)."),
            click.option("--table", help="Only dead letters of keyspace.table."),
            click.option("--reason", help="Only this reason, e.g. unknown_table, malformed_event."),
            click.option("--status", "statuses", type=click.Choice(STATUSES), multiple=True),
            click.option("--since", help="Recorded at or after: ISO-8601 time, or a duration ago (2h, 7d)."),
            click.option("--until", help="Recorded before: ISO-8601 time, or a duration ago."),
        ]
    ):
        func = opt(func)
    return func


def _filter(
    ids: tuple[int, ...],
    table: str | None,
    reason: str | None,
    statuses: tuple[str, ...],
    since: str | None,
    until: str | None,
) -> DlqFilter:
    now = datetime.now(UTC)
    try:
        return DlqFilter(
            ids=ids,
            table=table,
            reason=reason,
            statuses=statuses,
            since=parse_when(since, now) if since else None,
            until=parse_when(until, now) if until else None,
        )
    except (FilterError, ValueError) as error:
        raise click.UsageError(str(error)) from None


def _not_found(message: str, as_json: bool) -> NoReturn:
    """Exit 3; with ``--json`` the error is a JSON document on stdout too (the API's error body)."""
    if as_json:
        click.echo(json_text({"error": {"code": "not_found", "message": message}}))
    click.echo(message, err=True)
    sys.exit(EXIT_NOT_FOUND)


@click.group(name="dlq")
def dlq() -> None:
    """Dead letters: list, show, replay, resolve, ignore, purge."""
    configured_settings()  # a bad value exits 2 naming the key, before any command runs


@dlq.command(name="list")
@filters
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--after", type=int, default=0, help="Page on: only ids greater than this (see next_after).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(limit: int, after: int, as_json: bool, **selected: Any) -> None:
    """Dead letters, oldest first, without their payloads."""
    settings = get_settings()
    f = _filter(**selected)
    prefix = settings.kafka.topic_prefix
    with _connection(settings) as conn:
        rows = store.records(conn, f, prefix, limit, after)
        total = store.count(conn, f, prefix)
    next_after = rows[-1]["id"] if len(rows) == limit else None
    if as_json:
        click.echo(json_text({"records": rows, "total": total, "next_after": next_after}))
        return
    for r in rows:
        click.echo(
            f"{r['id']:>8} {r['status']:<9} {r['error_type']:<22} {r['topic']}[{r['partition']}]@{r['offset']}"
            f" retries={r['retry_count']} {r['recorded_at']:%Y-%m-%d %H:%M:%S}"
        )
    click.echo(
        f"{len(rows)} of {total}" + (f"; next page: --after {next_after}" if next_after else ""), err=True
    )


@dlq.command()
@click.argument("record_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(record_id: int, as_json: bool) -> None:
    """One dead letter: origin, reason, decoded key and value, replay history."""
    settings = get_settings()
    with _connection(settings) as conn:
        row = store.record(conn, record_id)
    if row is None:
        _not_found(f"no dead letter {record_id}", as_json)
    row = opened(row, sealer_for(settings))
    if as_json:
        click.echo(json_text(row))
        return
    for name in (
        "id",
        "status",
        "error_type",
        "error_message",
        "last_error",
        "retry_count",
        "recorded_at",
        "published_at",
        "replayed_at",
        "resolution_note",
    ):
        click.echo(f"{name:>16}: {row[name]}")
    click.echo(f"{'origin':>16}: {row['topic']}[{row['partition']}]@{row['offset']}")
    click.echo(f"{'key':>16}: {json_text(row['key'])}")
    click.echo(f"{'value':>16}: {json_text(row['value'])}")
    for entry in row["history"]:
        click.echo(f"{'history':>16}: {json_text(entry)}")


@dlq.command()
@filters
@click.option(
    "--mode", type=click.Choice([m.value for m in Mode]), default=Mode.IMMEDIATE.value, show_default=True
)
@click.option("--rate", type=float, help="Records per second (rate-limited; a cap for the others).")
@click.option("--at", help="scheduled: when (ISO-8601 with zone); a worker's timer starts it.")
@click.option("--dry-run", is_flag=True, help="Only count what would be replayed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def replay(
    mode: str, rate: float | None, at: str | None, dry_run: bool, as_json: bool, **selected: Any
) -> None:
    """Replay dead letters through the stream's apply path (default: status pending or failed).

    immediate and rate-limited run here, with a progress bar; scheduled is recorded and started by a worker
    at its time (it survives worker restarts)."""
    settings = get_settings()
    f = _filter(**selected)
    try:
        when = parse_when(at, datetime.now(UTC)) if at else None
        request = ReplayRequest(f, Mode(mode), rate if rate is not None else settings.dlq.replay_rate, when)
    except (FilterError, ValueError) as error:
        raise click.UsageError(str(error)) from None
    if dry_run:
        _dry_run(settings, request.filter.with_default_statuses(REPLAYABLE), as_json)
        return
    if request.mode is Mode.SCHEDULED:
        with _connection(settings) as conn:
            job = store.create_job(conn, request, requested_by="cli")
        body = {"replay_id": job["id"], "status": job["status"], "scheduled_at": job["scheduled_at"]}
        click.echo(json_text(body) if as_json else f"replay {job['id']} scheduled at {job['scheduled_at']}")
        return
    final = asyncio.run(_run_here(settings, request))
    _report(final, as_json)


def _dry_run(settings: Settings, f: DlqFilter, as_json: bool) -> None:
    with _connection(settings) as conn:
        groups = store.summary(conn, f, settings.kafka.topic_prefix)
    matched = sum(int(g["records"]) for g in groups)
    if as_json:
        click.echo(json_text({"dry_run": True, "matched": matched, "groups": groups}))
        return
    for g in groups:
        click.echo(f"{g['records']:>8} {g['status']:<9} {g['error_type']:<22} {g['topic']}")
    click.echo(f"would replay {matched} dead letters")


async def _run_here(settings: Settings, request: ReplayRequest) -> dict[str, Any]:
    """Create the job as running under this process and run it (connected first: the job's heartbeat
    starts with its first chunk)."""
    from app.runtime import Runtime

    runtime = Runtime(settings)
    try:
        await runtime.replayer()
        with _connection(settings) as conn:
            job = store.create_job(conn, request, requested_by="cli", owner=runtime.owner)
        with _Bar() as bar:
            final = await runtime.run_replay(job, bar.update)
    finally:
        runtime.close()
    assert final is not None
    return final


class _Bar:
    """A progress bar on stderr: records done of the total, rate and ETA."""

    def __enter__(self) -> _Bar:
        self.bar: Any = None
        self.done = 0
        return self

    def update(self, progress: Any) -> None:
        if self.bar is None:
            self.bar = click.progressbar(
                length=max(progress.total, 1),
                label="replaying",
                show_pos=True,
                show_eta=True,
                file=sys.stderr,
            )
            self.bar.__enter__()
        self.bar.update(progress.done - self.done)
        self.done = progress.done

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _report(final: dict[str, Any], as_json: bool) -> None:
    started, finished = final["started_at"], final["finished_at"]
    seconds = (finished - started).total_seconds() if started and finished else 0.0
    body = {
        "replay_id": final["id"],
        "status": final["status"],
        "matched": final["matched"],
        "replayed": final["replayed"],
        "failed": final["failed"],
        "error": final["error"],
        "seconds": round(seconds, 3),
    }
    if as_json:
        click.echo(json_text(body))
    else:
        pace = f" ({final['replayed'] / seconds:.1f}/s)" if seconds > 0 else ""
        click.echo(
            f"replay {final['id']} {final['status']}: {final['matched']} matched, {final['replayed']} replayed, "
            f"{final['failed']} failed again in {seconds:.1f}s{pace}"
            + (f"; error: {final['error']}" if final["error"] else "")
        )
    if final["status"] == "failed":
        sys.exit(EXIT_ERROR)
    if final["failed"]:
        sys.exit(EXIT_PARTIAL)


@dlq.command()
@click.argument("replay_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(replay_id: int, as_json: bool) -> None:
    """A replay job: mode, filter, counts, status."""
    settings = get_settings()
    with _connection(settings) as conn:
        found = store.job(conn, replay_id)
    if found is None:
        _not_found(f"no replay {replay_id}", as_json)
    if as_json:
        click.echo(json_text(found))
        return
    for name, value in found.items():
        click.echo(f"{name:>13}: {value}")


def _close(ids: tuple[int, ...], note: str | None, status: str, as_json: bool) -> None:
    settings = get_settings()
    with _connection(settings) as conn:
        done = store.close(conn, ids, status, note)
    missing = sorted(set(ids) - set(done))
    if as_json:
        click.echo(json_text({"status": status, "ids": done, "not_changed": missing}))
    else:
        click.echo(f"{len(done)} dead letters {status}" + (f"; not changed: {missing}" if missing else ""))
    if missing:
        sys.exit(EXIT_NOT_FOUND)


@dlq.command()
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--note", help="Why (kept with the record).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def resolve(ids: tuple[int, ...], note: str | None, as_json: bool) -> None:
    """Mark dead letters resolved (fixed some other way); a replay no longer takes them."""
    _close(ids, note, "resolved", as_json)


@dlq.command()
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--note", help="Why (kept with the record).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ignore(ids: tuple[int, ...], note: str | None, as_json: bool) -> None:
    """Mark dead letters ignored; a replay no longer takes them."""
    _close(ids, note, "ignored", as_json)


@dlq.command()
@filters
@click.option("--older-than", required=True, help="Recorded longer ago than this (30d, 12h).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def purge(older_than: str, as_json: bool, **selected: Any) -> None:
    """Delete dead letters recorded before a time from PostgreSQL (default: closed ones only, i.e. replayed,
    resolved or ignored; name --status to purge others)."""
    try:
        age = parse_duration(older_than)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    f = _filter(**selected).with_default_statuses(CLOSED)
    settings = get_settings()
    started = time.monotonic()
    with _connection(settings) as conn:
        removed = store.purge(conn, age, f, settings.kafka.topic_prefix)
    body = {"purged": removed, "older_than_s": age.total_seconds(), "filter": f.as_dict()}
    took = time.monotonic() - started
    click.echo(json_text(body) if as_json else f"purged {removed} dead letters in {took:.1f}s")

"""Reconciliation on the worker: the schedule (every ``reconcile.interval_s``, on exactly one worker of the
group: a PostgreSQL advisory lock, and no second scheduled job within the interval) and the jobs the API
triggers, at most ``reconcile.max_concurrent_jobs`` at once. The work is :mod:`app.reconcile.jobs`."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
from collections.abc import Sequence
from typing import Any

import structlog

from app import pg_connection
from app.faust_app import app
from app.reconcile import jobs, store
from app.settings import get_settings
from tables import progress

log = structlog.get_logger("cdc.reconcile")

SCHEDULE_LOCK = 0x6364635F72656331
"""The advisory lock key of the schedule (``cdc_rec1``): one worker at a time."""


class _Jobs:
    semaphore: asyncio.Semaphore | None = None
    running: set[asyncio.Task[Any]] = set()


state = _Jobs()


def _slots() -> asyncio.Semaphore:
    if state.semaphore is None:
        state.semaphore = asyncio.Semaphore(get_settings().reconcile.max_concurrent_jobs)
    return state.semaphore


def busy() -> bool:
    """Every job slot taken?"""
    return _slots().locked()


async def trigger(tables: Sequence[str], options: jobs.JobOptions) -> int:
    """Record a job and run it in the background (the caller checked :func:`busy`); its id."""
    settings = get_settings()
    job_id, names = await asyncio.to_thread(jobs.start, settings, tables, options)
    task = asyncio.ensure_future(_run(job_id, names, options))
    state.running.add(task)
    task.add_done_callback(state.running.discard)
    return job_id


async def _run(job_id: int, tables: Sequence[str], options: jobs.JobOptions) -> None:
    async with _slots():
        try:
            final = await asyncio.to_thread(jobs.run, get_settings(), tables, options, job_id=job_id)
        except Exception:
            log.exception("reconciliation job failed", job_id=job_id)
            return
    for table in final["report"].get("tables", []):
        progress.record_reconciliation(table)
    log.info(
        "reconciliation finished",
        job_id=job_id,
        status=final["status"],
        mismatches=final["mismatches"],
        drift_percentage=final["drift_percentage"],
    )


@app.timer(interval=get_settings().reconcile.interval_s or 3600.0)
async def scheduled_reconciliation() -> None:
    """Start the scheduled job on this worker if it holds the schedule's lock and none ran this interval."""
    settings = get_settings()
    interval = settings.reconcile.interval_s
    if interval is None or busy():
        return
    try:
        due = await asyncio.to_thread(_claim_schedule, interval)
    except Exception:
        log.exception("reconciliation schedule check failed; next tick retries")
        return
    if due is None:
        return
    log.info("scheduled reconciliation started", job_id=due[0], tables=due[1])
    options = jobs.JobOptions.from_settings(settings, "scheduled")
    task = asyncio.ensure_future(_run(due[0], due[1], options))
    state.running.add(task)
    task.add_done_callback(state.running.discard)


def _claim_schedule(interval: float) -> tuple[int, list[str]] | None:
    """Under the schedule's advisory lock: if no scheduled job started within 90 % of the interval, record
    one (job id, tables); else None. Two workers' timers never both start one."""
    settings = get_settings()
    with pg_connection.connect(settings, autocommit=True) as conn:
        locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (SCHEDULE_LOCK,)).fetchone()
        if not locked or not locked[0]:
            return None
        try:
            last = store.last_scheduled(conn)
            now = dt.datetime.now(dt.UTC)
            if last is not None and (now - last).total_seconds() < 0.9 * interval:
                return None
            options = jobs.JobOptions.from_settings(settings, "scheduled")
            names = list(settings.reconcile.tables) or jobs.mirrored_tables(conn)
            owner = f"{settings.app_id}@{socket.gethostname()}:{os.getpid()}"
            return store.start_job(conn, options.strategy.value, names, "scheduled", owner), names
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEDULE_LOCK,))


@app.timer(interval=min(60.0, max(1.0, get_settings().reconcile.job_stale_s / 2)))
async def resume_stale_jobs() -> None:
    """A job whose runner died (no heartbeat for ``reconcile.job_stale_s``) is taken over and finished: only
    its ranges not done are read."""
    settings = get_settings()
    if busy():
        return
    owner = f"{settings.app_id}@{socket.gethostname()}:{os.getpid()}"
    stale = settings.reconcile.job_stale_s

    def claim() -> int | None:
        with pg_connection.connect(settings, autocommit=True) as conn:
            for job in store.resumable(conn, stale):
                if store.claim_stale(conn, int(job["id"]), owner, stale):
                    return int(job["id"])
        return None

    try:
        job_id = await asyncio.to_thread(claim)
    except Exception:
        log.exception("looking for stale reconciliation jobs failed; next tick retries")
        return
    if job_id is None:
        return
    log.warning("resuming a reconciliation job whose runner stopped", job_id=job_id)
    task = asyncio.ensure_future(_resume(job_id))
    state.running.add(task)
    task.add_done_callback(state.running.discard)


async def _resume(job_id: int) -> None:
    async with _slots():
        try:
            await asyncio.to_thread(jobs.rerun, get_settings(), job_id)
        except Exception:
            log.exception("resumed reconciliation job failed", job_id=job_id)

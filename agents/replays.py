"""Dead-letter replay jobs and retention on the worker's timers (thin: the work is in :mod:`app.dlq`).

Jobs live in PostgreSQL (``_cdc_dlq_replays``): a scheduled one starts on whichever worker's timer finds it
due first, and one whose worker died (no heartbeat for ``dlq.job_stale_s``) is taken over, so a schedule
survives restarts.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from agents.changes import current_runtime
from app import metrics
from app.faust_app import app
from app.settings import get_settings
from models.dlq import CLOSED, DlqFilter

log = structlog.get_logger("cdc.replay")


class _Running:
    task: asyncio.Task[object] | None = None


running = _Running()


@app.timer(interval=1.0)
async def start_due_replay() -> None:
    """Start the next due replay job unless this worker is running one."""
    if running.task is not None and not running.task.done():
        return
    runtime = current_runtime()
    if runtime.applier is None:
        return
    try:
        replayer = await runtime.replayer()
        job = await asyncio.to_thread(replayer.claim, get_settings().dlq.job_stale_s)
    except Exception:
        log.exception("looking for due replay jobs failed; next tick retries")
        return
    if job is None:
        metrics.dlq_replay_jobs.set(0)
        return
    metrics.dlq_replay_jobs.set(1)
    log.info("replay started", replay_id=job["id"], mode=job["mode"], filter=job["filter"])
    running.task = asyncio.ensure_future(runtime.run_replay(job, lambda _: None))


@app.timer(interval=3600.0)
async def purge_closed_dead_letters() -> None:
    """Retention: closed dead letters (replayed, resolved, ignored) older than ``dlq.retention_days``."""
    from app.dlq import store

    runtime = current_runtime()
    if runtime.pool is None:
        return
    pool, settings = runtime.pool, get_settings()
    days = settings.dlq.retention_days

    def purge() -> int:
        with pool.connection() as conn:
            return store.purge(
                conn, timedelta(days=days), DlqFilter(statuses=CLOSED), settings.kafka.topic_prefix
            )

    try:
        removed = await asyncio.to_thread(purge)
    except Exception:
        log.exception("dead-letter retention failed; next run retries")
        return
    if removed:
        log.info("closed dead letters past retention purged", removed=removed, days=days)

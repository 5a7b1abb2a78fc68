"""Backfill jobs on the worker, run in a thread, one at a time per worker: those started through the API
(``POST /backfill``), and with ``backfill.auto`` those of tables whose mirror a worker has just created (one
worker starts each: an advisory lock, and never a second job for a table). The work is
:mod:`app.backfill.runner` (the same as ``cdc backfill``)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from typing import Any

import structlog

from app import pg_connection
from app.backfill import runner, store
from app.faust_app import app
from app.settings import Settings, get_settings

log = structlog.get_logger("cdc.backfill")

AUTO_LOCK = 0x6364635F62616B31
"""The advisory lock key of starting automatic backfills (``cdc_bak1``): one worker at a time."""


class _Jobs:
    running: set[asyncio.Task[Any]] = set()


state = _Jobs()


def busy() -> bool:
    """Is a backfill job running on this worker?"""
    return any(not t.done() for t in state.running)


def _owner() -> str:
    return f"{get_settings().app_id}@{socket.gethostname()}:{os.getpid()}"


async def trigger(tables: Sequence[str], options: runner.BackfillOptions) -> int:
    """Record a job and run it in the background (the caller checked :func:`busy`); its id."""
    settings, owner = get_settings(), _owner()
    job_id = await asyncio.to_thread(runner.start, settings, tables, options, owner)
    task = asyncio.ensure_future(_run(job_id, owner))
    state.running.add(task)
    task.add_done_callback(state.running.discard)
    return job_id


async def _run(job_id: int, owner: str) -> None:
    try:
        final = await asyncio.to_thread(runner.run, get_settings(), job_id, owner=owner)
    except Exception:
        log.exception("backfill job failed", job_id=job_id)
        return
    log.info("backfill finished", job_id=job_id, status=final["status"], rows=final["rows"])


@app.timer(interval=get_settings().backfill.auto_check_s)
async def backfill_new_mirrors() -> None:
    """``backfill.auto``: a table whose mirror was created (first sight) and that no job has backfilled gets one."""
    settings = get_settings()
    if not settings.backfill.auto or busy():
        return
    try:
        job = await asyncio.to_thread(_start_due, settings)
    except Exception:
        log.exception("looking for new mirrors to backfill failed; next tick retries")
        return
    if job is None:
        return
    job_id, tables = job
    log.info("automatic backfill started", job_id=job_id, tables=tables)
    task = asyncio.ensure_future(_run(job_id, _owner()))
    state.running.add(task)
    task.add_done_callback(state.running.discard)


def _start_due(settings: Settings) -> tuple[int, list[str]] | None:
    """Under :data:`AUTO_LOCK`: record one job for the new mirrors ``backfill.auto`` names (None: none)."""
    auto = settings.backfill.auto
    with pg_connection.connect(settings, autocommit=True) as conn:
        locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (AUTO_LOCK,)).fetchone()
        if not locked or not locked[0]:
            return None
        try:
            due = [t for t in store.never_backfilled(conn) if "*" in auto or t in auto]
            if not due:
                return None
            options = runner.BackfillOptions.from_settings(settings)
            owner = _owner()
            job_id = store.start_job(
                conn, due, {**options.as_dict(), "trigger": "auto"}, owner, options.ranges
            )
            return job_id, due
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (AUTO_LOCK,))

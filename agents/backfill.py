"""Backfill jobs started through the API (``POST /backfill``), run in a thread of the worker, one at a time per
worker. The work is :mod:`app.backfill.runner` (the same as ``cdc backfill``)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from typing import Any

import structlog

from app.backfill import runner
from app.settings import get_settings

log = structlog.get_logger("cdc.backfill")


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

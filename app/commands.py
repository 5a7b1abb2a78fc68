"""Project subcommands of the ``cdc`` CLI (Faust's own commands such as ``worker`` come with the app)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.cli import AppCommand, option

from app.faust_app import app
from app.settings import get_settings


@app.command(
    option("--rate", type=float, default=200.0, show_default=True, help="Writes per second."),
    option("--seconds", type=float, default=10.0, show_default=True, help="How long to write."),
    option("--seed", type=int, default=0, show_default=True, help="Seed of the deterministic write mix."),
    option("--create-schema/--no-create-schema", default=True, show_default=True),
)
async def generate(self: AppCommand, rate: float, seconds: float, seed: int, create_schema: bool) -> None:
    """Write a realistic mix (inserts, partial updates, deletes of every kind, TTLs) to the demo keyspace."""
    from app.cassandra_session import connect
    from app.demo import generator
    from app.demo.runner import create_captured_schema

    settings = get_settings()
    cluster, session = connect(settings.cassandra)
    try:
        if create_schema:
            await asyncio.to_thread(create_captured_schema, session, settings, self.say)
        report = await asyncio.to_thread(generator.run, session, rate, seconds, seed)
    finally:
        cluster.shutdown()
    mix: dict[str, Any] = dict(sorted(report.planned.items()))
    self.say(f"wrote {report.written} ({report.failed} failed) in {report.elapsed_s:.1f}s: {mix}")
    if report.failed:
        raise SystemExit(1)


@app.command(
    option("--rate", type=float, default=300.0, show_default=True, help="Writes per second."),
    option("--seconds", type=float, default=30.0, show_default=True, help="How long to write."),
)
async def demo(self: AppCommand, rate: float, seconds: float) -> None:
    """The whole job on the local stack: schema, worker, writes, live summary, row-by-row comparison."""
    from app.demo.runner import run_demo

    equal = await asyncio.to_thread(run_demo, get_settings(), rate, seconds, self.say)
    self.say(
        "Cassandra and PostgreSQL are equal." if equal else "Cassandra and PostgreSQL DIFFER (see above)."
    )
    if not equal:
        raise SystemExit(1)

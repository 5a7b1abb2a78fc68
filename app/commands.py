"""Project subcommands of the ``cdc`` CLI (Faust's own commands such as ``worker`` come with the app)."""

from __future__ import annotations

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
    from app.demo import generator, schema

    cluster, session = connect(get_settings().cassandra)
    try:
        if create_schema:
            schema.create_schema(session)
        report = generator.run(session, rate=rate, seconds=seconds, seed=seed)
    finally:
        cluster.shutdown()
    mix: dict[str, Any] = dict(sorted(report.planned.items()))
    self.say(f"wrote {report.written} ({report.failed} failed) in {report.elapsed_s:.1f}s: {mix}")
    if report.failed:
        raise SystemExit(1)

"""Project subcommands of the ``cdc`` CLI (Faust's own commands such as ``worker`` come with the app)."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from faust.cli import AppCommand, argument, option

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


@app.command(
    argument("action", type=click.Choice(["show", "reset"])),
    argument("topic", required=False),
    option("--partition", type=int, default=None, help="Only this partition (reset: default all of TOPIC)."),
    option("--to", "to", default=None, help="reset: earliest, latest, or an offset."),
    option("--group", default=None, help="Consumer group (default: the app id, CDC_APP_ID)."),
    option("--json", "as_json", is_flag=True, default=False, help="Machine-readable output."),
)
async def offsets(
    self: AppCommand,
    action: str,
    topic: str | None,
    partition: int | None,
    to: str | None,
    group: str | None,
    as_json: bool,
) -> None:
    """Show PostgreSQL's stored offsets next to Kafka's (status ok, beyond_end, behind_retention, ...), or
    reset where a partition resumes: `cdc offsets reset TOPIC [--partition P] --to earliest|latest|N`."""
    import json

    import psycopg

    from app import offsets as ops

    settings = get_settings()
    group = group or settings.app_id
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        rows = [r for r in ops.checkpoints(conn, group, topic) if partition is None or r[1] == partition]
        bounds = await ops.kafka_bounds(settings.kafka.bootstrap_servers, [(t, p) for t, p, _, _ in rows])
        current = ops.report(rows, bounds)
        if action == "show":
            if as_json:
                self.say(json.dumps({"group": group, "partitions": [p.as_dict() for p in current]}))
            else:
                for p in current:
                    self.say(
                        f"{p.topic}[{p.partition}] stored={p.stored} kafka={p.earliest}..{p.end} {p.status}"
                    )
            return
        if topic is None or to is None:
            raise click.UsageError("reset needs TOPIC and --to")
        try:
            targets = {
                (p.topic, p.partition): ops.reset_target(to, *bounds[(p.topic, p.partition)])
                for p in current
                if (p.topic, p.partition) in bounds
            }
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        if not targets:
            raise click.UsageError(f"no checkpoint of group {group} for {topic} exists in Kafka")
        ops.reset(conn, group, targets)
    done = [
        {"topic": p.topic, "partition": p.partition, "from": p.stored, "to": targets[(p.topic, p.partition)]}
        for p in current
        if (p.topic, p.partition) in targets
    ]
    if as_json:
        self.say(json.dumps({"group": group, "reset": done}))
    else:
        for d in done:
            self.say(f"{d['topic']}[{d['partition']}] {d['from']} -> {d['to']}")

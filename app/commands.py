"""Project subcommands of the ``cdc`` CLI (Faust's own commands such as ``worker`` come with the app)."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from faust.cli import AppCommand, argument, option

from app import pg_connection
from app.faust_app import app
from app.kafka_auth import client_kwargs
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

    from app import offsets as ops

    settings = get_settings()
    group = group or settings.app_id
    with pg_connection.connect(settings) as conn:
        rows = [r for r in ops.checkpoints(conn, group, topic) if partition is None or r[1] == partition]
        bounds = await ops.kafka_bounds(
            settings.kafka.bootstrap_servers, [(t, p) for t, p, _, _ in rows], client_kwargs(settings.kafka)
        )
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


@app.command(
    argument("action", type=click.Choice(["show", "resolve"])),
    argument("table"),
    option(
        "--rebuild",
        is_flag=True,
        default=False,
        help="resolve: move the mirror aside (renamed <name>_v<version>) so the worker creates it anew.",
    ),
    option("--json", "as_json", is_flag=True, default=False, help="Machine-readable output."),
)
async def schema(self: AppCommand, action: str, table: str, rebuild: bool, as_json: bool) -> None:
    """Recorded schema versions of KEYSPACE.TABLE (`show`), or resolve its quarantine (`resolve --rebuild`:
    the old mirror is kept under a new name; the worker creates the new one and resumes the table's events
    from PostgreSQL's offsets within one schema check)."""
    import json

    from app.sink import ddl
    from app.sink.schema_sync import latest, record, versions
    from models.mirror_spec import spec_for
    from models.schema_diff import describe

    keyspace, _, name = table.partition(".")
    if not name:
        raise click.UsageError("TABLE is keyspace.table")
    settings = get_settings()
    with pg_connection.connect(settings) as conn:
        if action == "show":
            found = versions(conn, keyspace, name)
            if as_json:
                self.say(json.dumps({"table": table, "versions": found}, default=str))
            else:
                for v in found:
                    self.say(f"v{v['version']} {v['detected_at']} {v['action']} {v['detail'] or v['ddl']}")
            return
        newest = latest(conn, keyspace, name)
        if newest is None or newest[1] != "quarantined":
            raise click.UsageError(f"{table} is not quarantined")
        if not rebuild:
            raise click.UsageError(
                "choose how: --rebuild (or alter the mirror by hand; the worker re-checks it)"
            )
        from app.cassandra_schema import table_id, table_schema
        from app.cassandra_session import connect

        cluster, session = connect(settings.cassandra)
        try:
            spec = spec_for(table_schema(cluster, keyspace, name), settings.sink.table_targets.get(table))
            current_id = table_id(session, keyspace, name)
        finally:
            cluster.shutdown()
        suffix = f"_v{newest[0]}"
        statements = ddl.rename_mirror(spec, suffix)
        for statement in statements:
            conn.execute(statement)
        replay = await _replay_since_creation(conn, settings, keyspace, name, current_id)
        texts = [s.as_string(conn) for s in statements]
        detail = f"rebuild: old mirror kept as {spec.name}{suffix}; offsets {replay}"
        version = record(conn, spec, "resolved", describe(spec.source), [], texts, detail)
    result = {"table": table, "version": version, "old_mirror": f"{spec.schema}.{spec.name}{suffix}"}
    self.say(
        json.dumps(result) if as_json else f"{table}: old mirror moved to {result['old_mirror']} (v{version})"
    )


async def _replay_since_creation(
    conn: Any, settings: Any, keyspace: str, table: str, current_id: str | None
) -> dict[str, int]:
    """Rewind the table's partitions (every group) to the first record written since the table was created
    (its id is a timeuuid), so that events applied to the old mirror before the quarantine replay into the
    new one."""
    from app import offsets as ops
    from models.schema_diff import created_ms

    topic = f"{settings.kafka.topic_prefix}.{keyspace}.{table}"
    rows = conn.execute(
        "SELECT group_id, partition, next_offset FROM _cdc_checkpoints WHERE topic = %s AND next_offset >= 0",
        (topic,),
    ).fetchall()
    if not rows or current_id is None:
        return {}
    at = await ops.offsets_at(
        settings.kafka.bootstrap_servers,
        {(topic, p) for _, p, _ in rows},
        created_ms(current_id),
        client_kwargs(settings.kafka),
    )
    replay: dict[str, int] = {}
    for group in sorted({g for g, _, _ in rows}):
        stored = {(topic, p): o for g, p, o in rows if g == group}
        targets = ops.rewound(stored, at)
        ops.reset(conn, group, targets)
        replay.update({f"{group}:{p}": o for (_, p), o in targets.items()})
    return replay

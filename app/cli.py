"""The ``cdc`` command: our own click group in front of Faust's CLI.

``worker``, ``demo``, ``generate``, ``offsets`` and ``schema`` run through Faust (they need the app: its
worker, its ``@app.command`` wiring), ``stack`` is the local services' tool and ``dlq`` is plain click. Every
other name (Faust's internals: ``livecheck``, ``send``, ``tables`` ...) still reaches Faust, unlisted; ``cdc
faust --help`` shows them. Settings are validated before anything runs (a bad value exits 2 naming the key).
Faust imports :mod:`agents` and :mod:`tables` by name (``autodiscover``): nothing here imports them.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Any

import click
import orjson

from app.backfill.cli import backfill
from app.dlq.cli import dlq
from app.logging import configured_settings
from app.reconcile.cli import reconcile

ABOUT = """cass-cdc-pg: change data capture from Apache Cassandra to PostgreSQL.

Cassandra (CDC on) -> Debezium Cassandra agent -> Kafka -> `cdc worker` -> PostgreSQL, converging to
Cassandra's own state (write timestamps, tombstones, TTLs, collections). Configuration: CDC_* environment
variables or a TOML file named by CDC_CONFIG_FILE (see the README).
"""

THROUGH_FAUST = {
    "worker": "Run the pipeline: consume the change topics and apply them to PostgreSQL.",
    "demo": "The whole job on the local stack: schema, worker, writes, live summary, comparison.",
    "generate": "Write a realistic CQL mix to the demo keyspace.",
    "offsets": "Show or reset the offsets PostgreSQL keeps for each partition.",
    "schema": "Show a table's recorded schema versions, or resolve its quarantine.",
}
ORDER = (
    "worker",
    "stack",
    "demo",
    "generate",
    "dlq",
    "reconcile",
    "backfill",
    "transforms",
    "offsets",
    "schema",
)


def run_faust(args: list[str]) -> None:
    """Hand ``args`` to Faust's CLI for our app (it exits)."""
    settings = configured_settings()
    if args[:1] == ["worker"] and not {"--help", "-h"} & set(args):  # help needs no broker
        from app.kafka_auth import client_kwargs
        from app.topics import wait_for_kafka

        wait_for_kafka(settings.kafka.bootstrap_servers, client_kwargs(settings.kafka))
        _preflight_transforms(settings)
    import app.commands  # noqa: F401  (registers the project subcommands)
    from app.faust_app import app as faust_app

    sys.argv = ["cdc", *args]
    faust_app.main()


def _preflight_transforms(settings: Any) -> None:
    """The worker starts only with rules that fit Cassandra's tables (exit 2 naming the key); Cassandra
    unreachable now is not a configuration error: the worker retries it, and a table whose rules do not fit
    is quarantined then."""
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable

    from app.transform_check import check_transforms
    from models.transforms import TransformConfigError

    try:
        check_transforms(settings)
    except TransformConfigError as error:
        print(f"cdc: invalid configuration {error}", file=sys.stderr)
        sys.exit(2)
    except (NoHostAvailable, DriverException, OSError) as error:  # unreachable, timed out, ...
        print(
            f"cdc: transform rules not checked at start-up, Cassandra unreachable: {error}", file=sys.stderr
        )


def _through_faust(name: str, help_text: str, hidden: bool = False) -> click.Command:
    @click.pass_context
    def callback(ctx: click.Context) -> None:
        run_faust([name, *ctx.args] if name != "faust" else ctx.args or ["--help"])

    return click.Command(
        name,
        callback=callback,
        help=help_text,
        short_help=help_text,
        hidden=hidden,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class CdcGroup(click.Group):
    """Our commands in our order; any other name goes to Faust (its own internals, not listed)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*ORDER, "faust"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        if cmd_name in THROUGH_FAUST:
            return _through_faust(cmd_name, THROUGH_FAUST[cmd_name])
        if cmd_name == "faust":
            return _through_faust("faust", "Faust's own commands (livecheck, send, tables, ...).")
        return _through_faust(cmd_name, "", hidden=True)


def _version(ctx: click.Context, _: Any, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"cass-cdc-pg {version('cass-cdc-pg')} (faust-streaming {version('faust-streaming')})")
    ctx.exit()


@click.group(cls=CdcGroup, help=ABOUT, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version and exit.",
)
def cli() -> None:
    pass


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False
)
@click.pass_context
def stack(ctx: click.Context) -> None:
    """The local services on 127.0.0.1, no Docker (cdc stack --help)."""
    from stack.cli import main as stack_main

    sys.exit(stack_main(ctx.args))


cli.add_command(dlq)
cli.add_command(reconcile)
cli.add_command(backfill)


@cli.group()
def transforms() -> None:
    """Masking and timestamp rules per table (README, Transforms)."""


@transforms.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the compiled plans as JSON.")
def transforms_check(as_json: bool) -> None:
    """Check the configured rules against Cassandra's tables and show each table's plan (exit 2: a rule
    that does not fit, named by its key)."""
    from app.transform_check import check_transforms, plans_report
    from models.transforms import TransformConfigError

    settings = configured_settings()
    try:
        report = plans_report(check_transforms(settings))
    except TransformConfigError as error:
        click.echo(f"cdc: invalid configuration {error}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    if not report:
        click.echo("no transform rules configured")
    for table, plan in report.items():
        click.echo(f"{table} (plan {plan['fingerprint']})")
        for column, rule in plan["columns"].items():
            shown = {k: v for k, v in rule.items() if k != "key"}
            click.echo(f"  {column}: {orjson.dumps(shown).decode()}  [{rule.get('key', 'drop')}]")


def main() -> None:
    cli(prog_name="cdc")

"""``python -m stack`` / ``cdc stack``: up, down, restart, status, logs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from stack import control, process
from stack.config import Settings
from stack.errors import StackError
from stack.services import DEFAULT_UP, SERVICES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stack", description="Local services on 127.0.0.1 (no Docker).")
    sub = p.add_subparsers(dest="command", required=True)
    names = ", ".join(SERVICES)
    up = sub.add_parser("up", help="start services (and their dependencies); reuses healthy ones")
    default = " ".join(DEFAULT_UP)
    up.add_argument("services", nargs="*", metavar="service", help=f"default: {default}; of {names}")
    up.add_argument(
        "--tls",
        action="store_true",
        help="TLS mode (remembered by the stack directory): PostgreSQL accepts only TLS + password",
    )
    down = sub.add_parser("down", help="stop services this tool started (and what depends on them)")
    down.add_argument("services", nargs="*", metavar="service", help="default: all")
    restart = sub.add_parser(
        "restart",
        help="stop and start services (e.g. debezium after creating a keyspace and its tables together)",
    )
    restart.add_argument("services", nargs="+", metavar="service", choices=list(SERVICES))
    st = sub.add_parser("status", help="show services")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    logs = sub.add_parser("logs", help="print the end of a service's log")
    logs.add_argument("service", choices=list(SERVICES))
    logs.add_argument("-n", "--lines", type=int, default=50)
    return p


def echo(line: str) -> None:
    print(line, flush=True)


def tls_mode(s: Settings) -> Settings:
    """Switch the stack directory to TLS mode (a fresh directory only: its data is initialised in one mode)."""
    if not s.tls and (s.data_dir("postgres") / "PG_VERSION").is_file():
        raise StackError(
            f"the stack in {s.dir} was initialised without TLS: give the TLS stack a directory of its own "
            "(CDC_STACK_DIR) and ports (CDC_STACK_PG_PORT, ...)"
        )
    s.tls_marker.parent.mkdir(parents=True, exist_ok=True)
    s.tls_marker.touch()
    return dataclasses.replace(s, tls=True)


def cmd_up(args: argparse.Namespace, s: Settings) -> int:
    start = time.monotonic()
    if args.tls:
        s = tls_mode(s)
    control.up(args.services or list(DEFAULT_UP), s, echo)
    echo(f"up: all ready in {time.monotonic() - start:.1f}s")
    return 0


def cmd_down(args: argparse.Namespace, s: Settings) -> int:
    control.down(args.services, s, echo)
    return 0


def cmd_restart(args: argparse.Namespace, s: Settings) -> int:
    """Stop the services (only those, not what depends on them) and start them again, waiting until ready."""
    start = time.monotonic()
    control.restart(args.services, s, echo)
    echo(f"restart: ready in {time.monotonic() - start:.1f}s")
    return 0


def cmd_status(args: argparse.Namespace, s: Settings) -> int:
    info = control.status(s)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for name, svc in info["services"].items():
        state = "healthy" if svc["healthy"] else "running" if svc["running"] else "stopped"
        pid = svc["pid"] or "-"
        where = control.summary(SERVICES[name], s)
        print(f"{name:<10} {state:<8} pid {pid!s:<8} port {svc['port']:<6} {where}")
    return 0


def cmd_logs(args: argparse.Namespace, s: Settings) -> int:
    for line in process.tail(s.log_file(args.service), args.lines):
        print(line)
    return 0


COMMANDS = {"up": cmd_up, "down": cmd_down, "restart": cmd_restart, "status": cmd_status, "logs": cmd_logs}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, Settings.from_env())
    except StackError as err:
        print(f"stack: error: {err.message}", file=sys.stderr)
        for line in err.detail:
            print(f"  {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=sys.stderr)
        return 130

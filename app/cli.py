"""The ``cdc`` command: Faust's CLI for the app (``cdc worker`` ...) plus the project's own commands.

The entry point validates the settings first (a bad value exits 2 naming the key), then hands over to
Faust, which imports :mod:`agents` and :mod:`tables` by name (``autodiscover``): nothing here imports them.
"""

from __future__ import annotations

import sys

from app.logging import configure_logging
from app.settings import ConfigError, get_settings


def _run_faust() -> None:
    if "worker" in sys.argv[1:]:
        from app.topics import wait_for_kafka

        wait_for_kafka(get_settings().kafka.bootstrap_servers)
    import app.commands  # noqa: F401  (registers the project subcommands)
    from app.faust_app import app as faust_app

    faust_app.main()


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] == "stack":
        from stack.cli import main as stack_main

        sys.exit(stack_main(argv[1:]))
    try:
        settings = get_settings()
    except ConfigError as error:
        print(f"cdc: {error}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_format)
    _run_faust()

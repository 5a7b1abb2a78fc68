"""The ``cdc`` command as a new user meets it: help that says what the tool is and lists our commands first,
our version, Faust's internals reachable but not listed, and a bad setting refused before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version

from app.testing import REPO


def cdc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_says_what_the_tool_is_and_lists_our_commands_first() -> None:
    done = cdc("--help")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Usage: cdc [OPTIONS] COMMAND [ARGS]..."
    assert "cass-cdc-pg: change data capture from Apache Cassandra to PostgreSQL." in done.stdout
    commands = [
        line.split()[0]
        for line in lines[lines.index("Commands:") + 1 :]
        if line.startswith("  ") and not line.startswith("   ")
    ]
    assert commands == [
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
        "faust",
    ]
    listed = "\n".join(lines[lines.index("Commands:") :])
    for internal in ("livecheck", "model", "send", "agents", "clean-versions"):
        assert f"  {internal} " not in listed
    assert "Welcome" not in done.stdout


def test_version_is_ours_with_fausts() -> None:
    done = cdc("--version")
    assert done.returncode == 0, done.stderr
    expected = f"cass-cdc-pg {version('cass-cdc-pg')} (faust-streaming {version('faust-streaming')})"
    assert done.stdout.strip() == expected


def test_fausts_own_commands_are_still_reachable() -> None:
    done = cdc("faust", "--help")
    assert done.returncode == 0, done.stderr
    assert "livecheck" in done.stdout
    worker = cdc("worker", "--help")
    assert worker.returncode == 0
    assert "worker [OPTIONS]" in worker.stdout


def test_a_bad_setting_exits_2_naming_the_key_before_any_command_runs() -> None:
    for args in (("dlq", "list"), ("offsets", "show")):
        done = cdc(*args, CDC_SINK__BATCH_SIZE="0")
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "sink.batch_size (env CDC_SINK__BATCH_SIZE)" in done.stderr


def test_backfill_without_a_qualified_table_is_a_usage_error_before_connecting() -> None:
    for args, message in ((["backfill"], "at least one table"), (["backfill", "nodot"], "'nodot'")):
        done = cdc(*args, CDC_POSTGRES__DSN="postgresql://nobody@127.0.0.1:1/none")
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
    done = cdc("backfill", "--resume", "3", "ks.t")
    assert done.returncode == 2
    assert "--resume JOB takes no tables" in done.stderr

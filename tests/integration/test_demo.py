"""``cdc demo`` (what ``make demo`` runs) on the real stack: it ends equal, and its output is only our summary
lines (the driver's server warnings go to a log file, not between them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.testing import REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

SUMMARY = [
    r"waiting until the Debezium agent captures demo\.\w+ \.\.\.",
    r"worker started \(pid \d+\), log .+",
    r"writing \d+ writes/s for \d+s  \(rows: cassandra/postgres\)",
    r"  t= *[\d.]+s  applied +\d+ ev/s  lag +\d+  .+",
    r"generator: \d+ writes \(0 failed\): \{.+\}",
    r"waiting for the worker to apply everything \.\.\.",
    r"row-by-row comparison, Cassandra vs PostgreSQL:",
    r"  demo\.\w+: cassandra=\d+ postgres=\d+ missing=0 extra=0 different=0 EQUAL",
    r"Cassandra and PostgreSQL are equal\.",
]


def test_the_demo_prints_only_its_summary_and_ends_equal(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, cassandra_contact: tuple[str, int]
) -> None:
    host, port = cassandra_contact
    env = {
        **os.environ,
        "CDC_DATA_DIR": str(tmp_path / "demo"),
        "CDC_WEB__PORT": str(free_port()),
        "CDC_POSTGRES__DSN": pg_dsn,
        "CDC_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CDC_CASSANDRA__HOSTS": f'["{host}"]',
        "CDC_CASSANDRA__PORT": str(port),
    }
    done = subprocess.run(
        [sys.executable, "-m", "app", "demo", "--seconds", "5", "--rate", "100"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 0, "\n".join(lines[-40:])
    stray = [line for line in lines if not any(re.fullmatch(p, line) for p in SUMMARY)]
    assert stray == [], stray
    assert lines[-1] == "Cassandra and PostgreSQL are equal."
    driver_log = tmp_path / "demo" / "cdc-demo-driver.log"
    assert driver_log.exists()

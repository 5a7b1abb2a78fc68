"""Backfill throughput: ``cdc backfill`` (one process: one worker) of a ``BENCH_BACKFILL_ROWS``-row table of
the benchmark shape (default 1,000,000; ``(id int, c int, name text, v bigint, PRIMARY KEY (id, c))``, as the
reconciliation benchmark) into an empty mirror by one worker (one ``cdc backfill`` process) at ``--parallel``
1, 2 and 4 and by two workers sharing the job, and into a mirror that already holds half the rows; rows/s, peak RSS of the backfill process, and the CPU it costs Cassandra and PostgreSQL.
``BENCH_BACKFILL_REUSE=1`` keeps the Cassandra table an earlier run loaded.

Baseline, measured in the same run: the same token-range scan (same query, pages and ranges) read by the
driver and thrown away, in one thread: what Cassandra and the driver give before anything is applied.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.query import tuple_factory

from app.cassandra_session import connect
from app.cql import table_name
from bench.common import Services, header, machine_info, now_iso
from bench.observe import cpu_seconds, postgres_pids
from bench.reconcile import KEYSPACE, TABLE, _settings, load_cassandra
from models.backfill import scan_query
from models.token_ranges import split
from stack.config import Settings as StackSettings

ROWS = int(os.environ.get("BENCH_BACKFILL_ROWS", "1000000"))
RANGES = 256
PLAN_ROWS = 100_000_000
REPEATS = int(os.environ.get("BENCH_BACKFILL_REPEATS", "3"))
TARGET = 20_000
SETTINGS = ((1, 1), (2, 1), (4, 1), (2, 2))
"""(--parallel, processes): one worker at 1, 2 and 4 threads, and two workers sharing the job."""


def cassandra_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"CassandraDaemon" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def raw_scan(settings: Any) -> dict[str, Any]:
    """The baseline: every range read through the driver, nothing applied."""
    from app.cassandra_schema import table_schema

    cluster, session = connect(settings.cassandra)
    try:
        schema = table_schema(cluster, KEYSPACE, TABLE)
        statement = session.prepare(scan_query(schema, table_name(KEYSPACE, TABLE)))
        profile = session.execution_profile_clone_update(EXEC_PROFILE_DEFAULT, row_factory=tuple_factory)
        started, rows = time.monotonic(), 0
        for r in split(RANGES):
            bound = statement.bind((r.start, r.end))
            bound.fetch_size = 1000
            rows += sum(1 for _ in session.execute(bound, timeout=120, execution_profile=profile))
        seconds = time.monotonic() - started
    finally:
        cluster.shutdown()
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds)}


class CpuSampler(threading.Thread):
    """CPU seconds used by the processes ``pids()`` finds, sampled every 0.5 s (PostgreSQL backends come and
    go with their connections: a backend's time counts up to its last sample)."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.stopping = threading.Event()
        self.first = {p: cpu_seconds([p]) for p in pids()}
        self.last: dict[int, float] = dict(self.first)

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            for pid in self.pids():
                self.last[pid] = cpu_seconds([pid])

    def used(self) -> float:
        self.stopping.set()
        self.join(2)
        return sum(v - self.first.get(p, 0.0) for p, v in self.last.items())


def _env(s: StackSettings) -> dict[str, str]:
    return {
        **os.environ,
        "CDC_POSTGRES__DSN": f"postgresql://postgres@{s.host}:{s.pg_port}/cdc",
        "CDC_CASSANDRA__HOSTS": json.dumps([s.host]),
        "CDC_CASSANDRA__PORT": str(s.cassandra_port),
        "CDC_LOG_LEVEL": "WARNING",
    }


def backfill(s: StackSettings, parallel: int, processes: int = 1) -> dict[str, Any]:
    """One job run by ``processes`` ``cdc backfill --resume JOB`` processes of ``--parallel`` threads each:
    rows/s over the job, the largest peak RSS of a process, the CPU cores Cassandra and PostgreSQL used."""
    from app.backfill import runner

    settings = _settings(s)
    options = runner.BackfillOptions.from_settings(settings, ranges=RANGES, parallel=parallel)
    job_id = runner.start(settings, [f"{KEYSPACE}.{TABLE}"], options)
    samplers = [CpuSampler(cassandra_pids), CpuSampler(postgres_pids)]
    for sampler in samplers:
        sampler.start()
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "backfill", "--resume", str(job_id), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_env(s),
            cwd=Path(__file__).resolve().parent.parent,
        )
        for _ in range(processes)
    ]
    outs = [p.communicate(timeout=7200)[0] for p in procs]
    wall = time.monotonic() - started
    cassandra_cpu, pg_cpu = (sampler.used() for sampler in samplers)
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out in outs]
    rows = sum(r["tables"][0]["rows_this_run"] for r in results)
    seconds = max(r["tables"][0]["seconds"] for r in results)
    return {
        "parallel": parallel,
        "processes": processes,
        "rows": rows,
        "seconds": seconds,
        "rows_per_second": round(rows / seconds),
        "wall_s": round(wall, 1),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
        "cassandra_cpu_cores": round(cassandra_cpu / wall, 2),
        "postgres_cpu_cores": round(pg_cpu / wall, 2),
        "status": sorted({r["status"] for r in results}),
    }


def empty_mirror(settings: Any) -> None:
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{KEYSPACE}" CASCADE')


def half_mirror(settings: Any) -> int:
    """Remove every other partition from a full mirror (by hand): it then holds half the rows."""
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        removed = conn.execute(f'DELETE FROM "{KEYSPACE}"."{TABLE}" WHERE id % 2 = 1').rowcount
        conn.execute(f'VACUUM ANALYZE "{KEYSPACE}"."{TABLE}"')
    return removed


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run by rows/s, with every run's rows/s."""
    ordered = sorted(runs, key=lambda r: r["rows_per_second"])
    return {**ordered[len(ordered) // 2], "runs_rows_per_second": [r["rows_per_second"] for r in runs]}


def run(rows: int = ROWS) -> dict[str, Any]:
    s = StackSettings.from_env()
    settings = _settings(s)
    runs: dict[str, list[dict[str, Any]]] = {}
    with Services(["postgres", "cassandra"], s):
        load_s = 0.0 if os.environ.get("BENCH_BACKFILL_REUSE") else load_cassandra(settings, rows)
        print(f"  loaded {rows} rows in Cassandra in {load_s:.0f}s", flush=True)
        baseline = raw_scan(settings)
        print(f"  raw scan: {baseline}", flush=True)
        for rep in range(REPEATS):  # settings interleaved: the machine's drift spreads over all of them
            for parallel, processes in SETTINGS:
                empty_mirror(settings)
                label = f"{processes}x{parallel}"
                runs.setdefault(label, []).append(backfill(s, parallel, processes))
                print(f"  #{rep + 1} empty mirror, {label}: {runs[label][-1]}", flush=True)
            removed = half_mirror(settings)  # the mirror of the last run is full
            runs.setdefault("half", []).append(backfill(s, 2))
            print(
                f"  #{rep + 1} half-full mirror ({removed} rows removed), 1x2: {runs['half'][-1]}", flush=True
            )
    empty = {label: _median_run(r) for label, r in runs.items() if label != "half"}
    per_worker = [r for r in empty.values() if r["processes"] == 1]
    best = max(per_worker, key=lambda r: r["rows_per_second"])
    return {
        "benchmark": "backfill",
        "date": now_iso(),
        "machine": machine_info(s),
        "parameters": {
            "rows": rows,
            "ranges": RANGES,
            "page_size": 1000,
            "batch_rows": 2000,
            "repeats": REPEATS,
        },
        "load_s": round(load_s, 1),
        "raw_scan": baseline,
        "empty": empty,
        "half_full": {**_median_run(runs["half"]), "rows_already_present": rows - removed},
        "projected_minutes_for_plan": round(PLAN_ROWS / best["rows_per_second"] / 60, 1),
        "target_rows_per_second": TARGET,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = header(result)
    base = result["raw_scan"]["rows_per_second"]
    lines += [
        f"Baseline (same scan, read and dropped, one thread): {base:,} rows/s.",
        "",
        "| run | median rows/s (the job) | runs | / raw scan | rows | s | peak RSS MiB | Cassandra CPU cores "
        "| PostgreSQL CPU cores |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    runs = [
        (f"empty mirror, {v['processes']} worker(s) x --parallel {v['parallel']}", v)
        for v in result["empty"].values()
    ]
    runs.append(("mirror holding half the rows, --parallel 2", result["half_full"]))
    for label, r in runs:
        lines.append(
            f"| {label} | {r['rows_per_second']:,} | {', '.join(f'{v:,}' for v in r['runs_rows_per_second'])} "
            f"| {r['rows_per_second'] / base:.2f} | {r['rows']:,} "
            f"| {r['seconds']} | {r['peak_rss_mib']} | {r['cassandra_cpu_cores']} | {r['postgres_cpu_cores']} |"
        )
    lines += [
        "",
        f"Projected for the plan's 100M rows per table, one worker at its best --parallel: "
        f"{result['projected_minutes_for_plan']} min (target {result['target_rows_per_second']:,} rows/s: "
        f"{PLAN_ROWS / result['target_rows_per_second'] / 60:.0f} min).",
    ]
    return "\n".join(lines)

"""Reconciliation throughput: ``cdc reconcile`` (CHECKSUM) over an undrifted table of ``BENCH_RECONCILE_ROWS``
rows (default 1,000,000) and over the same table with 0.1 % of its rows drifted in PostgreSQL; rows/min per
worker (one ``cdc reconcile`` process) and its peak RSS.

Loading: Cassandra by concurrent CQL inserts ``USING TIMESTAMP``; the mirror by the sink's own apply path
(``apply_table``) with the same values and write times, so the two sides are equal without waiting for the
capture. A ROW_COUNT run over the same table is the baseline measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from cassandra.concurrent import execute_concurrent_with_args

from app.cassandra_session import connect
from app.runtime import Runtime
from app.settings import load_settings
from app.sink.applier import apply_table
from bench.common import Services, header, machine_info, now_iso
from models.mutations import CellWrite, RowWrite
from stack.config import Settings as StackSettings

KEYSPACE, TABLE = "bench_reconcile", "items"
ROWS = int(os.environ.get("BENCH_RECONCILE_ROWS", "1000000"))
DRIFT = 0.001
TS = 1_700_000_000_000_000


def _settings(s: StackSettings) -> Any:
    return load_settings(
        postgres={"dsn": f"postgresql://postgres@{s.host}:{s.pg_port}/cdc"},
        kafka={"bootstrap_servers": f"{s.host}:{s.kafka_port}"},
        cassandra={"hosts": [s.host], "port": s.cassandra_port},
    )


def _key(i: int) -> tuple[int, int]:
    return i // 4, i % 4


def load(settings: Any, rows: int) -> float:
    """Both sides, equal; seconds taken."""
    started = time.monotonic()
    load_cassandra(settings, rows)
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{KEYSPACE}" CASCADE')
    asyncio.run(_mirror(settings, rows))
    return time.monotonic() - started


def load_cassandra(settings: Any, rows: int) -> float:
    """The table in Cassandra alone (dropped and created), every row at one write time; seconds taken."""
    started = time.monotonic()
    cluster, session = connect(settings.cassandra)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
        session.execute(
            f"CREATE KEYSPACE {KEYSPACE} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(
            f"CREATE TABLE {KEYSPACE}.{TABLE} (id int, c int, name text, v bigint, PRIMARY KEY (id, c))"
        )
        insert = session.prepare(
            f"INSERT INTO {KEYSPACE}.{TABLE} (id, c, name, v) VALUES (?, ?, ?, ?) USING TIMESTAMP {TS}"
        )
        for start in range(0, rows, 50_000):
            params = [(*_key(i), f"name-{i}", i * 7) for i in range(start, min(rows, start + 50_000))]
            for _ in range(5):  # a write that timed out (the node is shared with everything) is sent again
                results = execute_concurrent_with_args(
                    session, insert, params, concurrency=64, raise_on_first_error=False
                )
                params = [p for p, (ok, _) in zip(params, results, strict=True) if not ok]
                if not params:
                    break
            if params:
                raise RuntimeError(f"{len(params)} inserts kept failing")
    finally:
        cluster.shutdown()
    return time.monotonic() - started


async def _mirror(settings: Any, rows: int) -> None:
    runtime = Runtime(settings)
    try:
        applier = await runtime.ensure_started()
        entry = runtime.registry.resolve(KEYSPACE, TABLE)
        assert runtime.pool is not None
        for start in range(0, rows, 20_000):
            mutations = [
                RowWrite(_key(i), TS, {"name": CellWrite(f"name-{i}"), "v": CellWrite(i * 7)}, marker=True)
                for i in range(start, min(rows, start + 20_000))
            ]
            with runtime.pool.connection() as conn, conn.transaction():
                apply_table(conn, entry, mutations, TS, applier.reader)
    finally:
        runtime.close()


def reconcile(s: StackSettings, *args: str) -> dict[str, Any]:
    """One ``cdc reconcile`` process: its JSON result, wall time and peak RSS."""
    env = {
        **os.environ,
        "CDC_POSTGRES__DSN": f"postgresql://postgres@{s.host}:{s.pg_port}/cdc",
        "CDC_CASSANDRA__HOSTS": json.dumps([s.host]),
        "CDC_CASSANDRA__PORT": str(s.cassandra_port),
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "reconcile", "--table", f"{KEYSPACE}.{TABLE}", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    out, _ = proc.communicate(timeout=3600)
    result = json.loads(out.decode().strip().splitlines()[-1])
    [table] = result["tables"]
    return {
        "wall_s": round(time.monotonic() - started, 2),
        "scan_s": table["seconds"],
        "rows_per_minute": table["rows_per_minute"],
        "mismatches": table["mismatches"],
        "cassandra_rows": table["cassandra_rows"],
        "peak_rss_mib": result["peak_rss_mib"],  # VmHWM of the reconcile process itself
    }


RUNS = 3


def repeated(s: StackSettings, label: str, *args: str) -> dict[str, Any]:
    """``RUNS`` runs; the median run's figures, with every run's rows/min."""
    runs = []
    for i in range(RUNS):
        runs.append(reconcile(s, *args))
        print(f"  {label} #{i + 1}: {runs[-1]}", flush=True)
    median = sorted(runs, key=lambda r: r["rows_per_minute"])[len(runs) // 2]
    return {
        **median,
        "runs_rows_per_minute": [r["rows_per_minute"] for r in runs],
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    }


def drift(settings: Any, rows: int) -> int:
    """Change ``DRIFT`` of the mirror's rows in PostgreSQL (by hand: the cells keep their write times)."""
    step = int(1 / DRIFT)
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        ids = [_key(i) for i in range(0, rows, step)]
        with conn.cursor() as cur:
            cur.executemany(
                f'UPDATE "{KEYSPACE}"."{TABLE}" SET name = name || \'-drift\' WHERE id = %s AND c = %s',
                ids,
            )
    return len(ids)


def reusable(settings: Any, rows: int) -> bool:
    """``BENCH_RECONCILE_REUSE=1`` and both sides hold the table from an earlier run: undo its drift, keep it."""
    if not os.environ.get("BENCH_RECONCILE_REUSE"):
        return False
    cluster, session = connect(settings.cassandra)
    try:
        found = session.execute(f"SELECT count(*) FROM {KEYSPACE}.{TABLE}", timeout=300).one()[0]
    except Exception:
        return False
    finally:
        cluster.shutdown()
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        mirror = f'"{KEYSPACE}"."{TABLE}"'
        counted = conn.execute(f"SELECT count(*) FROM {mirror}").fetchone()
        conn.execute(
            f"UPDATE {mirror} SET name = regexp_replace(name, '(-drift)+$', '') WHERE name LIKE '%-drift'"
        )
    return found == rows and counted is not None and counted[0] == rows


def run(rows: int = ROWS) -> dict[str, Any]:
    s = StackSettings.from_env()
    settings = _settings(s)
    options = (
        "--ranges",
        "256",
        "--concurrency",
        "4",
        "--row-threshold",
        "2000",
        "--recheck-after",
        "1",
        "--lag-allowance",
        "0",
    )
    with Services(["postgres", "cassandra"], s):
        load_s = 0.0 if reusable(settings, rows) else load(settings, rows)
        print(f"  loaded {rows} rows on both sides in {load_s:.0f}s", flush=True)
        counted = repeated(s, "ROW_COUNT", "--strategy", "ROW_COUNT", *options)
        clean = repeated(s, "CHECKSUM undrifted", *options)
        drifted_rows = drift(settings, rows)
        drifted = repeated(s, f"CHECKSUM with {drifted_rows} drifted rows", *options)
    return {
        "benchmark": "reconcile",
        "date": now_iso(),
        "machine": machine_info(s),
        "parameters": {
            "runs": RUNS,
            "rows": rows,
            "ranges": 256,
            "concurrency": 4,
            "row_threshold": 2000,
            "drift": DRIFT,
        },
        "load_s": round(load_s, 1),
        "row_count": counted,
        "checksum_undrifted": clean,
        "checksum_drifted": {**drifted, "drifted_rows": drifted_rows},
        "target_rows_per_minute": 3_000_000,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = header(result)
    lines += [
        "| run | median rows/min (per worker) | runs | scan s (median run) | mismatches | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (
        ("row_count", "ROW_COUNT (baseline: scan, no hashing)"),
        ("checksum_undrifted", "CHECKSUM, undrifted"),
        ("checksum_drifted", f"CHECKSUM, {result['checksum_drifted']['drifted_rows']} rows drifted (0.1 %)"),
    ):
        r = result[key]
        runs = ", ".join(f"{v:,}" for v in r["runs_rows_per_minute"])
        lines.append(
            f"| {label} | {r['rows_per_minute']:,} | {runs} | {r['scan_s']} | {r['mismatches']} "
            f"| {r['peak_rss_mib']} |"
        )
    ratio = result["checksum_undrifted"]["rows_per_minute"] / result["row_count"]["rows_per_minute"]
    lines += [
        "",
        f"CHECKSUM / ROW_COUNT throughput: {ratio:.2f}; target {result['target_rows_per_minute']:,} rows/min.",
    ]
    return "\n".join(lines)

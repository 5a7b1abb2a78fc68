"""Reconciliation on the real stack (Cassandra, the Debezium agent, Kafka, a worker, PostgreSQL).

A replicated table gets a known set of drifts: rows deleted only in PostgreSQL, a value and a collection changed
only in PostgreSQL, rows only in PostgreSQL, and rows written in Cassandra while the table's capture was off.
``cdc reconcile`` (CHECKSUM) finds exactly those keys, records them, and exits 5; ROW_COUNT sees the counts.
Then an undrifted table under live writes: CHECKSUM reports no mismatch.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cassandra.concurrent import execute_concurrent_with_args

from app.cassandra_schema import table_schema
from app.testing import (
    REPO,
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    mirror_ids,
    run_cdc,
    wait_applied,
    wait_until,
)
from models.token import partition_token

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

ROWS = 100_000
DEFINITION = "id int, c int, name text, tags set<text>, PRIMARY KEY (id, c)"


def reconcile(worker: WorkerProcess, *args: str) -> tuple[int, dict[str, Any]]:
    return run_cdc(worker, "reconcile", *args)


def fill(cql: Any, keyspace: str, table: str, rows: int) -> None:
    insert = cql.prepare(f"INSERT INTO {keyspace}.{table} (id, c, name, tags) VALUES (?, ?, ?, ?)")
    params = [(i // 5, i % 5, f"n{i}", {f"t{i % 3}", "x"}) for i in range(rows)]
    for result in execute_concurrent_with_args(cql, insert, params, concurrency=64):
        assert result.success, result.result_or_exc


def converged(
    cql: Any, pg_dsn: str, worker: WorkerProcess, keyspace: str, tables: list[str], topics: list[str]
) -> None:
    """Applied to the end and equal (100k events take minutes on a CI machine, under coverage)."""

    def equal() -> bool:
        wait_applied(pg_dsn, worker.app_id, worker.kafka_bootstrap or "", topics, timeout=600)
        return all(d.equal for d in compare_keyspace(cql, pg_dsn, keyspace, tables))

    try:
        wait_until(equal, 900, "the mirror did not converge before the drift")
    except TimeoutError as error:
        pytest.fail(f"{error}\n{worker.log_tail()}")


def test_checksum_finds_exactly_the_drifted_keys_and_no_false_positives_under_live_writes(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    names = {"t": f"{topic_prefix}.{keyspace}.t", "live": f"{topic_prefix}.{keyspace}.live"}
    topics.extend(names.values())
    create_cdc_keyspace(
        cql, keyspace, {"t": DEFINITION, "live": DEFINITION}, topic_prefix, kafka_bootstrap, agent_log
    )
    fill(cql, keyspace, "t", ROWS)
    fill(cql, keyspace, "live", 2000)
    filled = time.monotonic()
    worker = start_worker([keyspace])
    converged(cql, pg_dsn, worker, keyspace, ["t", "live"], list(names.values()))

    # The drifts, each with known keys.
    schema = table_schema(cql.cluster, keyspace, "t")
    types = tuple(c.type for c in schema.partition_key)
    expected: set[tuple[str, tuple[int, int]]] = set()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        mirror = f'"{keyspace}"."t"'
        for key in ((10, 0), (11, 2), (512, 4)):
            conn.execute(f"DELETE FROM {mirror} WHERE id = %s AND c = %s", key)
            expected.add(("MISSING_IN_POSTGRES", key))
        conn.execute(f"UPDATE {mirror} SET name = 'zzz drift' WHERE id = 20 AND c = 1")
        expected.add(("DATA_MISMATCH", (20, 1)))
        conn.execute(f"UPDATE {mirror} SET tags = ARRAY['only-pg'] WHERE id = 21 AND c = 3")
        expected.add(("DATA_MISMATCH", (21, 3)))
        for new_id in (900_001, 900_002):
            conn.execute(
                f"""INSERT INTO {mirror} (id, c, name, tags, _cdc_cells, _cdc_token)
                    VALUES (%s, 0, 'extra', NULL, '{{}}', %s)""",
                (new_id, partition_token(types, (new_id,))),
            )
            expected.add(("MISSING_IN_CASSANDRA", (new_id, 0)))
    # Capture paused: the agent skips the table's writes while cdc is off. A marker written to a captured
    # table after them, once in PostgreSQL, shows the agent has gone past them; then capture is turned on again.
    window_start = datetime.now(UTC) - timedelta(seconds=1)
    cql.execute(f"ALTER TABLE {keyspace}.t WITH cdc = false")
    time.sleep(3)  # the agent hears of the schema change
    for new_id in (800_001, 800_002):
        cql.execute(f"INSERT INTO {keyspace}.t (id, c, name) VALUES ({new_id}, 1, 'uncaptured')")
        expected.add(("MISSING_IN_POSTGRES", (new_id, 1)))
    cql.execute(f"INSERT INTO {keyspace}.live (id, c, name) VALUES (700000, 0, 'marker')")
    wait_until(lambda: mirror_ids(pg_dsn, keyspace, "live")[-1] == 700000, 60, "the marker was not applied")
    cql.execute(f"ALTER TABLE {keyspace}.t WITH cdc = true")

    rc, result = reconcile(
        worker,
        "--table",
        f"{keyspace}.t",
        "--ranges",
        "16",
        "--row-threshold",
        "100",
        "--recheck-after",
        "2",
        "--lag-allowance",
        "0",
    )
    assert rc == 5, result
    [table] = result["tables"]
    assert table["mismatches"] == len(expected), table
    assert table["cassandra_rows"] == ROWS + 2
    assert table["postgres_rows"] == ROWS - 3 + 2
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT mismatch_type, primary_key, columns FROM _cdc_reconciliation_mismatches WHERE job_id = %s",
            (result["job_id"],),
        ).fetchall()
    assert {(kind, tuple(key)) for kind, key, _ in rows} == expected
    columns = {tuple(key): cols for kind, key, cols in rows if kind == "DATA_MISMATCH"}
    assert columns == {(20, 1): ["name"], (21, 3): ["tags"]}
    rc, listed = reconcile(worker, "jobs", "--table", f"{keyspace}.t")
    assert (rc, [j["id"] for j in listed["jobs"]]) == (0, [result["job_id"]])
    assert listed["jobs"][0]["alert_fired"] is False  # 9 of 5002 rows: below the 1 % warning
    rc, shown = reconcile(worker, "mismatches", "--job", str(result["job_id"]), "--limit", "5")
    assert (rc, len(shown["mismatches"])) == (0, 5)
    rc, rest = reconcile(
        worker, "mismatches", "--job", str(result["job_id"]), "--after", str(shown["next_after"])
    )
    assert {
        (m["mismatch_type"], tuple(m["primary_key"])) for m in shown["mismatches"] + rest["mismatches"]
    } == expected

    # SAMPLE sees what its partitions hold; TIMESTAMP_RANGE the rows written in its window: the uncaptured ones.
    rc, sampled = reconcile(
        worker,
        "--table",
        f"{keyspace}.t",
        "--strategy",
        "SAMPLE",
        "--sample-size",
        "300",
        "--recheck-after",
        "1",
        "--lag-allowance",
        "0",
    )
    [sample] = sampled["tables"]
    assert 0 < sample["cassandra_rows"] <= 300 * 5, sample
    with psycopg.connect(pg_dsn) as conn:
        seen = conn.execute(
            "SELECT mismatch_type, primary_key FROM _cdc_reconciliation_mismatches WHERE job_id = %s",
            (sampled["job_id"],),
        ).fetchall()
    assert {(kind, tuple(key)) for kind, key in seen} <= expected
    assert rc == (5 if seen else 0), sampled
    rc, windowed = reconcile(
        worker,
        "--table",
        f"{keyspace}.t",
        "--strategy",
        "TIMESTAMP_RANGE",
        "--since",
        window_start.isoformat(),
        "--recheck-after",
        "1",
        "--lag-allowance",
        "0",
    )
    with psycopg.connect(pg_dsn) as conn:
        recent = conn.execute(
            "SELECT mismatch_type, primary_key FROM _cdc_reconciliation_mismatches WHERE job_id = %s",
            (windowed["job_id"],),
        ).fetchall()
    assert rc == 5, windowed
    assert {(kind, tuple(key)) for kind, key in recent} == {
        ("MISSING_IN_POSTGRES", (800_001, 1)),
        ("MISSING_IN_POSTGRES", (800_002, 1)),
    }

    rc, counted = reconcile(worker, "--table", f"{keyspace}.t", "--strategy", "ROW_COUNT", "--ranges", "16")
    assert rc == 5
    assert (counted["tables"][0]["cassandra_rows"], counted["tables"][0]["postgres_rows"]) == (
        ROWS + 2,
        ROWS - 1,
    )

    # --repair brings the sides together through the apply path; a second job finds nothing.
    rc, repaired = reconcile(
        worker,
        "--table",
        f"{keyspace}.t",
        "--ranges",
        "16",
        "--row-threshold",
        "100",
        "--recheck-after",
        "2",
        "--lag-allowance",
        "0",
        "--repair",
    )
    assert (rc, repaired["tables"][0]["mismatches"], repaired["tables"][0]["repaired"]) == (0, 9, 9), repaired
    diffs = compare_keyspace(cql, pg_dsn, keyspace, ["t"])
    assert all(d.equal for d in diffs), [d.summary() for d in diffs]
    rc, again = reconcile(
        worker, "--table", f"{keyspace}.t", "--ranges", "16", "--recheck-after", "2", "--lag-allowance", "0"
    )
    assert (rc, again["tables"][0]["mismatches"], again["drift_percentage"]) == (0, 0, 0.0), again
    with psycopg.connect(pg_dsn) as conn:
        statuses = conn.execute(
            "SELECT DISTINCT resolution_status FROM _cdc_reconciliation_mismatches WHERE job_id = %s",
            (repaired["job_id"],),
        ).fetchall()
    assert statuses == [("AUTO_RESOLVED",)]

    # No false positives under live writes: 300 writes/s (updates, cell deletes, collection appends) into the
    # first 200 rows of an undrifted table during the job; one older row drifted in PostgreSQL is still found.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'UPDATE "{keyspace}"."live" SET name = %s WHERE id = 300 AND c = 0', ("drift",))
    stop = threading.Event()
    written = [0]

    def write() -> None:
        update = cql.prepare(f"UPDATE {keyspace}.live SET name = ?, tags = tags + ? WHERE id = ? AND c = ?")
        delete = cql.prepare(f"DELETE name FROM {keyspace}.live WHERE id = ? AND c = ?")
        i = 0
        while not stop.is_set():
            started = time.monotonic()
            for _ in range(30):
                i += 1
                key = ((i * 7919) % 40, i % 5)
                if i % 10 == 0:
                    cql.execute(delete, key)
                else:
                    cql.execute(update, (f"w{i}", {f"w{i % 4}"}, *key))
                written[0] += 1
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))

    time.sleep(
        max(0.0, 25 - (time.monotonic() - filled))
    )  # the rows not written to are older than the allowance
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        time.sleep(3)
        rc, live = reconcile(
            worker,
            "--table",
            f"{keyspace}.live",
            "--ranges",
            "16",
            "--row-threshold",
            "100",
            "--lag-allowance",
            "20",
        )
    finally:
        stop.set()
        writer.join(10)
    assert written[0] > 600, written
    [report] = live["tables"]
    assert (rc, report["mismatches"], report["by_type"]) == (5, 1, {"DATA_MISMATCH": 1}), live
    with psycopg.connect(pg_dsn) as conn:
        keys = conn.execute(
            "SELECT primary_key FROM _cdc_reconciliation_mismatches WHERE job_id = %s", (live["job_id"],)
        ).fetchall()
    assert [tuple(k) for (k,) in keys] == [(300, 0)]


def test_the_schedule_runs_each_interval_on_exactly_one_of_two_workers(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    topic = f"{topic_prefix}.{keyspace}.t"
    topics.append(topic)
    create_cdc_keyspace(cql, keyspace, {"t": DEFINITION}, topic_prefix, kafka_bootstrap, agent_log)
    fill(cql, keyspace, "t", 200)
    env = {"CDC_RECONCILE__INTERVAL_S": "4", "CDC_RECONCILE__TABLES": json.dumps([f"{keyspace}.t"])}
    workers = [start_worker([keyspace], extra_env=env) for _ in range(2)]
    converged(cql, pg_dsn, workers[0], keyspace, ["t"], [topic])

    def scheduled() -> list[tuple[Any, ...]]:
        with psycopg.connect(pg_dsn) as conn:
            return conn.execute(
                """SELECT started_at, owner, status, mismatches FROM _cdc_reconciliation_jobs
                   WHERE job_type = 'scheduled' AND tables = %s::jsonb ORDER BY started_at""",
                (json.dumps([f"{keyspace}.t"]),),
            ).fetchall()

    try:
        wait_until(lambda: len([j for j in scheduled() if j[2] == "done"]) >= 4, 90, "4 scheduled jobs")
    except TimeoutError as error:
        pytest.fail(f"{error}: {scheduled()}\n{workers[0].log_tail()}\n{workers[1].log_tail()}")
    jobs = scheduled()
    starts = [j[0] for j in jobs]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.9 * 4, gaps  # never two in one interval, whichever worker's timer fired
    owners = {j[1].split("@")[0] for j in jobs}
    assert owners <= {w.app_id for w in workers}, owners
    assert all(j[3] == 0 for j in jobs if j[2] == "done"), jobs


@dataclass
class KilledJob:
    worker: WorkerProcess
    job_id: int
    done_before: int
    killed_at: float


RANGES = 3000


def kill_a_job_mid_way(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> KilledJob:
    """A converged 2,000-row table with two rows deleted from the mirror; ``cdc reconcile`` over 3,000
    ranges killed (-9) once 300 ranges are done."""
    topic = f"{topic_prefix}.{keyspace}.t"
    topics.append(topic)
    create_cdc_keyspace(cql, keyspace, {"t": DEFINITION}, topic_prefix, kafka_bootstrap, agent_log)
    fill(cql, keyspace, "t", 2000)
    worker = start_worker([keyspace])
    converged(cql, pg_dsn, worker, keyspace, ["t"], [topic])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DELETE FROM "{keyspace}"."t" WHERE (id, c) IN ((3, 1), (250, 4))')
    args = [
        sys.executable,
        "-m",
        "app",
        "reconcile",
        "--table",
        f"{keyspace}.t",
        "--ranges",
        str(RANGES),
        "--concurrency",
        "1",
        "--recheck-after",
        "1",
        "--lag-allowance",
        "0",
        "--json",
    ]
    proc = subprocess.Popen(
        args, cwd=REPO, env=worker.cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: job_progress(pg_dsn, keyspace)[1] >= 300, 120, "the job never got going")
    finally:
        proc.kill()  # kill -9
        proc.wait(10)
    job_id, done_before = job_progress(pg_dsn, keyspace)
    assert job_id is not None
    assert 300 <= done_before < RANGES, done_before
    return KilledJob(worker, job_id, done_before, time.time())


def job_progress(pg_dsn: str, keyspace: str) -> tuple[int | None, int]:
    """The newest job over ``keyspace.t`` and how many of its ranges are done."""
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            """SELECT j.id, count(r.*) FROM _cdc_reconciliation_jobs j
               LEFT JOIN _cdc_reconciliation_ranges r ON r.job_id = j.id
               WHERE j.tables = %s::jsonb GROUP BY j.id ORDER BY j.id DESC LIMIT 1""",
            (json.dumps([f"{keyspace}.t"]),),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (None, 0)


def assert_finished_from_where_it_stopped(
    pg_dsn: str, killed: KilledJob, tables: list[dict[str, Any]]
) -> None:
    """Both deleted rows found, every Cassandra row counted, and only the ranges left were read again."""
    [table] = tables
    assert (table["mismatches"], table["by_type"]) == (2, {"MISSING_IN_POSTGRES": 2})
    assert table["cassandra_rows"] == 2000
    with psycopg.connect(pg_dsn) as conn:
        total, after = conn.execute(
            """SELECT count(*), count(*) FILTER (WHERE finished_at > to_timestamp(%s))
               FROM _cdc_reconciliation_ranges WHERE job_id = %s""",
            (killed.killed_at, killed.job_id),
        ).fetchone() or (0, 0)
    assert (total, after) == (RANGES, RANGES - killed.done_before)


def test_a_job_killed_mid_way_is_finished_by_rerun_reading_only_the_ranges_left(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    killed = kill_a_job_mid_way(
        cql, keyspace, start_worker, pg_dsn, kafka_bootstrap, topic_prefix, agent_log, topics
    )
    rc, result = reconcile(killed.worker, "--rerun", str(killed.job_id))
    assert (rc, result["job_id"], result["status"]) == (5, killed.job_id, "done"), result
    assert_finished_from_where_it_stopped(pg_dsn, killed, result["tables"])


def test_a_worker_takes_over_a_job_whose_runner_stopped_and_finishes_it(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    """No heartbeat for ``CDC_RECONCILE__JOB_STALE_S``: a worker of the group claims the job and reads only
    the ranges left (no operator involved)."""
    killed = kill_a_job_mid_way(
        cql, keyspace, start_worker, pg_dsn, kafka_bootstrap, topic_prefix, agent_log, topics
    )
    killed.worker.stop()
    worker = start_worker(
        [keyspace], app_id=killed.worker.app_id, extra_env={"CDC_RECONCILE__JOB_STALE_S": "3"}
    )

    def finished() -> tuple[Any, ...] | None:
        with psycopg.connect(pg_dsn) as conn:
            row = conn.execute(
                "SELECT status, owner, report FROM _cdc_reconciliation_jobs WHERE id = %s", (killed.job_id,)
            ).fetchone()
        return row if row is not None and row[0] != "running" else None

    try:
        row = wait_until(finished, 120, "the stale job was not taken over and finished")
    except TimeoutError as error:
        pytest.fail(f"{error}\n{worker.log_tail()}")
    assert row is not None
    status, owner, report = row
    assert status == "done", report
    assert owner.startswith(f"{worker.app_id}@"), owner
    assert "resuming a reconciliation job whose runner stopped" in worker.log_text()
    assert_finished_from_where_it_stopped(pg_dsn, killed, report["tables"])

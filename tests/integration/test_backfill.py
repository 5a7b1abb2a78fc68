"""``cdc backfill`` on the real stack.

1. Concurrent correctness: a table holds 200,000 rows written while its capture was off (so before the
   pipeline saw them): out-of-order ``USING TIMESTAMP``, TTLs, a collection, rows that exist only by their
   marker, rows that only UPDATEs wrote, and partition, range and row deletes over them. Capture is turned on,
   a worker runs, and a generator keeps writing updates and deletes of the same keys while ``cdc backfill``
   runs, is killed (-9) mid-way, and is resumed. At the end Cassandra and PostgreSQL are equal row by row.
2. Resume, measured: a backfill killed mid-way and resumed applies every row exactly once: the job's rows
   equal Cassandra's, and the two runners that resume it together read only the rows the killed one had not
   committed, sharing them; the table's transform rules apply to what it copies.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cassandra.concurrent import execute_concurrent_with_args

from app.clock import now_us
from app.testing import (
    REPO,
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    create_keyspace,
    free_port,
    run_cdc,
    wait_applied,
    wait_until,
)
from models.transforms import parse_rules

DEFINITION = "p int, c int, v int, w text, tags set<int>, PRIMARY KEY (p, c)"
PARTITIONS, PER_PARTITION = 20_000, 10
BASE = 1_700_000_000_000_000
HASH_KEY = "backfill-test-hash-key-0123456789"


def _execute(cql: Any, statement: str, params: list[tuple[Any, ...]]) -> None:
    prepared = cql.prepare(statement)
    for result in execute_concurrent_with_args(cql, prepared, params, concurrency=96):
        assert result.success, result.result_or_exc


def preload(cql: Any, keyspace: str, seed: int = 12) -> None:
    """200,000 rows of every kind, then deletes of every kind over them, all ``USING TIMESTAMP`` out of
    order (write times spread over 1,000 s, not in key order)."""
    rng = random.Random(seed)
    t = f"{keyspace}.t"
    kinds: dict[str, list[tuple[Any, ...]]] = {k: [] for k in ("full", "marker", "ttl", "update", "tags")}
    for p in range(PARTITIONS):
        for c in range(PER_PARTITION):
            ts = BASE + rng.randint(0, 1_000_000_000)
            kind = rng.choices(list(kinds), [55, 10, 10, 10, 15])[0]
            if kind == "full":
                kinds[kind].append((p, c, rng.randint(0, 99), f"w{rng.randint(0, 9)}", ts))
            elif kind == "marker":
                kinds[kind].append((p, c, ts))
            elif kind == "ttl":
                kinds[kind].append((p, c, rng.randint(0, 99), ts))
            elif kind == "update":
                kinds[kind].append((rng.randint(0, 99), ts, p, c))
            else:
                kinds[kind].append((p, c, {rng.randint(0, 5), 9}, ts))
    _execute(cql, f"INSERT INTO {t} (p, c, v, w) VALUES (?, ?, ?, ?) USING TIMESTAMP ?", kinds["full"])
    _execute(cql, f"INSERT INTO {t} (p, c) VALUES (?, ?) USING TIMESTAMP ?", kinds["marker"])
    _execute(cql, f"INSERT INTO {t} (p, c, v) VALUES (?, ?, ?) USING TIMESTAMP ? AND TTL 3600", kinds["ttl"])
    _execute(
        cql,
        f"UPDATE {t} USING TIMESTAMP ? SET v = ? WHERE p = ? AND c = ?",
        [(u[1], *u[:1], *u[2:]) for u in kinds["update"]],
    )
    _execute(cql, f"INSERT INTO {t} (p, c, tags) VALUES (?, ?, ?) USING TIMESTAMP ?", kinds["tags"])
    appends = [(BASE + rng.randint(0, 1_000_000_000), {7}, p, c) for p, c, _, _ in kinds["tags"][::3]]
    _execute(cql, f"UPDATE {t} USING TIMESTAMP ? SET tags = tags + ? WHERE p = ? AND c = ?", appends)
    # Deletes, some older than the rows they meet (those rows survive), some newer.
    deletes = [(BASE + rng.randint(0, 1_000_000_000), p) for p in range(0, PARTITIONS, 97)]
    _execute(cql, f"DELETE FROM {t} USING TIMESTAMP ? WHERE p = ?", deletes)
    ranges = [(BASE + rng.randint(0, 1_000_000_000), p) for p in range(5, PARTITIONS, 89)]
    _execute(cql, f"DELETE FROM {t} USING TIMESTAMP ? WHERE p = ? AND c >= 3 AND c < 6", ranges)
    rows = [(BASE + rng.randint(0, 1_000_000_000), p, p % PER_PARTITION) for p in range(7, PARTITIONS, 13)]
    _execute(cql, f"DELETE FROM {t} USING TIMESTAMP ? WHERE p = ? AND c = ?", rows)


class Generator(threading.Thread):
    """Updates and deletes of the preloaded keys, until stopped. Cell writes are backdated up to 3 s (some
    land before the write time of a scan that already saw the row: only each cell's own write time merges them
    right); row, range and partition deletes carry the clock's time (README, Backfill: the marker)."""

    def __init__(self, cql: Any, keyspace: str) -> None:
        super().__init__(daemon=True)
        self.cql, self.t = cql, f"{keyspace}.t"
        self.stop = threading.Event()
        self.written = 0
        self.error: BaseException | None = None

    def statement(self, rng: random.Random) -> str:
        p, c, now = rng.randrange(PARTITIONS), rng.randrange(PER_PARTITION), now_us()
        ts = now - rng.randint(
            0, 3_000_000
        )  # writes up to 3 s back: some older than the scan that saw the row
        kind = rng.choices(
            ["update", "insert", "cell", "row", "range", "partition", "append", "remove"],
            [30, 15, 10, 15, 5, 2, 15, 8],
        )[0]
        where = f"WHERE p = {p} AND c = {c}"
        return {
            "update": f"UPDATE {self.t} USING TIMESTAMP {ts} SET v = {rng.randint(0, 99)} {where}",
            "insert": f"INSERT INTO {self.t} (p, c, w) VALUES ({p}, {c}, 'g') USING TIMESTAMP {ts}",
            "cell": f"DELETE w FROM {self.t} USING TIMESTAMP {ts} {where}",
            "row": f"DELETE FROM {self.t} USING TIMESTAMP {now} {where}",
            "range": f"DELETE FROM {self.t} USING TIMESTAMP {now} WHERE p = {p} AND c >= {c} AND c < {c + 3}",
            "partition": f"DELETE FROM {self.t} USING TIMESTAMP {now} WHERE p = {p}",
            "append": f"UPDATE {self.t} USING TIMESTAMP {ts} SET tags = tags + {{{rng.randint(0, 5)}}} {where}",
            "remove": f"UPDATE {self.t} USING TIMESTAMP {ts} SET tags = tags - {{{rng.randint(0, 5)}}} {where}",
        }[kind]

    def run(self) -> None:
        rng = random.Random(99)
        try:
            while not self.stop.is_set():
                self.cql.execute(self.statement(rng))
                self.written += 1
                time.sleep(0.002)
        except BaseException as error:  # reported by the test
            self.error = error


def backfill_process(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "backfill", *args, "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def job_rows(pg_dsn: str, table: str) -> tuple[int | None, int, int]:
    """The newest backfill job of ``table``: its id, rows committed and ranges done."""
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            """SELECT j.id, coalesce(sum(r.rows), 0), count(*) FILTER (WHERE r.status = 'done')
               FROM _cdc_backfill_jobs j JOIN _cdc_backfill_ranges r ON r.job_id = j.id
               WHERE j.tables = %s::jsonb GROUP BY j.id ORDER BY j.id DESC LIMIT 1""",
            (json.dumps([table]),),
        ).fetchone()
    return (int(row[0]), int(row[1]), int(row[2])) if row else (None, 0, 0)


def kill_mid_way(pg_dsn: str, table: str, proc: subprocess.Popen[bytes], rows: int) -> tuple[int, int]:
    """kill -9 once ``rows`` are committed; the job's id and the rows it had committed."""
    try:
        wait_until(lambda: job_rows(pg_dsn, table)[1] >= rows or proc.poll() is not None, 300, "no progress")
        assert proc.poll() is None, "the backfill finished before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    job_id, committed, _ = job_rows(pg_dsn, table)
    assert job_id is not None
    return job_id, committed


def capture_paused(
    cql: Any, keyspace: str, topic_prefix: str, bootstrap: str, agent_log: Path, topics: list[str]
) -> str:
    """``keyspace.t``, captured by the agent, then with its capture off: what is written next is not; its
    topic (recorded in ``topics``)."""
    topic = f"{topic_prefix}.{keyspace}.t"
    topics.append(topic)
    create_cdc_keyspace(cql, keyspace, {"t": DEFINITION}, topic_prefix, bootstrap, agent_log)
    cql.execute(f"ALTER TABLE {keyspace}.t WITH cdc = false")
    time.sleep(3)  # the agent hears of it
    return topic


@pytest.mark.integration
@pytest.mark.services("postgres", "kafka", "cassandra", "debezium")
def test_a_backfill_killed_and_resumed_under_live_updates_and_deletes_converges_row_by_row(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    topic = capture_paused(cql, keyspace, topic_prefix, kafka_bootstrap, agent_log, topics)
    preload(cql, keyspace)
    cql.execute(f"ALTER TABLE {keyspace}.t WITH cdc = true")
    time.sleep(3)
    worker = start_worker([keyspace])
    generator = Generator(cql, keyspace)
    generator.start()
    try:
        table = f"{keyspace}.t"
        proc = backfill_process(
            worker.cli_env(), table, "--parallel", "2", "--ranges", "64", "--batch-rows", "1000"
        )
        job_id, committed = kill_mid_way(pg_dsn, table, proc, 40_000)
        rc, result = run_cdc(worker, "backfill", "--resume", str(job_id))
        assert (rc, result["status"], result["errors"]) == (0, "done", []), result
        [summary] = result["tables"]
        assert summary["rows"] == committed + summary["rows_this_run"]
        assert summary["ranges_done"] == 64
        time.sleep(2)
    finally:
        generator.stop.set()
        generator.join(10)
    assert generator.error is None, generator.error
    assert generator.written > 200, generator.written  # the stream really ran alongside
    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic], timeout=300)
    diffs = compare_keyspace(cql, pg_dsn, keyspace, ["t"])
    assert all(d.equal for d in diffs), [d.summary() for d in diffs]
    assert diffs[0].cassandra_rows > 150_000, diffs[0].cassandra_rows


@pytest.mark.integration
@pytest.mark.services("postgres", "cassandra")
def test_a_backfill_resumed_by_two_runners_applies_each_row_once_and_reads_only_what_was_not_committed(
    cql: Any, keyspace: str, pg_dsn: str, cassandra_contact: tuple[str, int], tmp_path: Path
) -> None:
    create_keyspace(cql, keyspace)
    cql.execute(f"CREATE TABLE {keyspace}.t ({DEFINITION})")
    rows = [(p, c, p * c, f"w{c}", BASE + p) for p in range(3000) for c in range(PER_PARTITION)]
    _execute(cql, f"INSERT INTO {keyspace}.t (p, c, v, w) VALUES (?, ?, ?, ?) USING TIMESTAMP ?", rows)
    host, port = cassandra_contact
    rules = {f"{keyspace}.t": {"w": {"mask": "hash"}}}
    transforms = {"CDC_TRANSFORMS": json.dumps(rules), "CDC_TRANSFORM_HASH_KEY": HASH_KEY}
    env = WorkerProcess(
        [keyspace],
        tmp_path,
        free_port(),
        pg_dsn=pg_dsn,
        cassandra_host=host,
        cassandra_port=port,
        extra_env=transforms,
    )
    table = f"{keyspace}.t"
    proc = backfill_process(
        env.cli_env(), table, "--parallel", "1", "--ranges", "16", "--batch-rows", "200", "--rate", "3000"
    )
    job_id, committed = kill_mid_way(pg_dsn, table, proc, 6000)
    assert 6000 <= committed < len(rows), committed
    # Two runners resume the job together: they share its ranges, each applied once.
    resumed = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "backfill", "--resume", str(job_id), "--json"],
            cwd=REPO,
            env=env.cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    results = []
    for runner in resumed:
        out, _ = runner.communicate(timeout=300)
        assert runner.returncode == 0, out
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    shares = [r["tables"][0]["rows_this_run"] for r in results]
    assert sum(shares) == len(rows) - committed, shares
    assert min(shares) > 0, shares  # both took ranges
    with psycopg.connect(pg_dsn) as conn:
        final = conn.execute(
            "SELECT status, rows FROM _cdc_backfill_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert final == ("done", len(rows))
    # The table's transforms apply to what the backfill copies: w is hashed in the mirror.
    diffs = compare_keyspace(cql, pg_dsn, keyspace, ["t"], transforms=(parse_rules(rules), HASH_KEY.encode()))
    assert all(d.equal for d in diffs), [d.summary() for d in diffs]
    assert diffs[0].cassandra_rows == diffs[0].postgres_rows == len(rows)
    with psycopg.connect(pg_dsn) as conn:
        w = conn.execute(f'SELECT w FROM "{keyspace}"."t" WHERE p = 1 AND c = 3').fetchone()
    assert w is not None
    assert len(w[0]) == 64, w


@pytest.mark.integration
@pytest.mark.services("postgres", "cassandra")
def test_a_table_cassandra_does_not_have_fails_alone_and_the_job_says_why(
    cql: Any, keyspace: str, pg_dsn: str, cassandra_contact: tuple[str, int], tmp_path: Path
) -> None:
    create_keyspace(cql, keyspace)
    cql.execute(f"CREATE TABLE {keyspace}.t ({DEFINITION})")
    cql.execute(f"INSERT INTO {keyspace}.t (p, c, v) VALUES (1, 1, 1)")
    host, port = cassandra_contact
    env = WorkerProcess(
        [keyspace], tmp_path, free_port(), pg_dsn=pg_dsn, cassandra_host=host, cassandra_port=port
    )
    rc, result = run_cdc(env, "backfill", f"{keyspace}.nosuch", f"{keyspace}.t", "--ranges", "4")
    assert (rc, result["status"]) == (1, "failed"), result
    assert [t["table"] for t in result["tables"]] == [f"{keyspace}.t"]
    assert result["tables"][0]["rows"] == 1
    [error] = result["errors"]
    assert error.startswith(f"{keyspace}.nosuch: UnknownTable"), error


@pytest.mark.integration
@pytest.mark.services("postgres", "kafka", "cassandra", "debezium")
def test_a_table_named_in_backfill_auto_is_backfilled_once_a_worker_has_created_its_mirror(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    capture_paused(cql, keyspace, topic_prefix, kafka_bootstrap, agent_log, topics)
    rows = [(p, c, p + c, "old", BASE + p) for p in range(100) for c in range(5)]
    _execute(cql, f"INSERT INTO {keyspace}.t (p, c, v, w) VALUES (?, ?, ?, ?) USING TIMESTAMP ?", rows)
    auto = {
        "CDC_BACKFILL__AUTO": json.dumps([f"{keyspace}.t"]),
        "CDC_BACKFILL__AUTO_CHECK_S": "1",
        "CDC_BACKFILL__RANGES": "8",
    }
    start_worker([keyspace], extra_env=auto)

    def job() -> tuple[Any, ...] | None:
        with psycopg.connect(pg_dsn) as conn:
            return conn.execute(
                "SELECT status, rows, options->>'trigger' FROM _cdc_backfill_jobs WHERE tables = %s::jsonb",
                (json.dumps([f"{keyspace}.t"]),),
            ).fetchone()

    found = wait_until(
        lambda: (j := job()) is not None and j[0] != "running" and j, 120, "no automatic backfill"
    )
    assert found == ("done", len(rows), "auto"), found
    diffs = compare_keyspace(cql, pg_dsn, keyspace, ["t"])
    assert all(d.equal for d in diffs), [d.summary() for d in diffs]
    assert diffs[0].postgres_rows == len(rows)

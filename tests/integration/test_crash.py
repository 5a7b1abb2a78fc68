"""Crashes mid-batch: ``kill -9`` of the worker while CQL statements stream, several times per run.

Each kill waits for a moment when the worker is demonstrably inside the stream: its checkpoint in
``_cdc_checkpoints`` has moved since it (re)started AND Kafka holds records beyond it (lag > 0), so batches
are being applied when the process dies. Afterwards PostgreSQL must equal Cassandra row by row, and the
``events`` counters must add up to the topic's end offsets: every record counted exactly once.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.clock import now_us
from app.testing import (
    StartWorker,
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    end_offsets,
    wait_applied,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

TABLE = "t"
DEFINITION = "p int, c int, v int, w text, tags set<int>, PRIMARY KEY (p, c)"
KILLS = 3
STATEMENTS = 1500
WRITE_SECONDS = 25.0


def statements(rng: random.Random, keyspace: str, n: int, base_ts: int) -> list[str]:
    """Writes with explicit, overlapping timestamps; cell, row and range deletes; set additions."""
    t = f"{keyspace}.{TABLE}"
    out = []
    for _ in range(n):
        p, c, ts, v = rng.randint(0, 4), rng.randint(0, 9), base_ts + rng.randint(0, 500), rng.randint(0, 9)
        where = f"WHERE p = {p} AND c = {c}"
        out.append(
            rng.choice(
                [
                    f"INSERT INTO {t} (p, c, v, w) VALUES ({p}, {c}, {v}, 'w{v}') USING TIMESTAMP {ts}",
                    f"INSERT INTO {t} (p, c, v, w) VALUES ({p}, {c}, {v}, 'w{v}') USING TIMESTAMP {ts}",
                    f"UPDATE {t} USING TIMESTAMP {ts} SET v = {v} {where}",
                    f"DELETE w FROM {t} USING TIMESTAMP {ts} {where}",
                    f"DELETE FROM {t} USING TIMESTAMP {ts} {where}",
                    f"DELETE FROM {t} USING TIMESTAMP {ts} WHERE p = {p} AND c >= {c} AND c < {c + 2}",
                    f"UPDATE {t} USING TIMESTAMP {ts} SET tags = tags + {{{v}}} {where}",
                ]
            )
        )
    return out


def stream(cql: Any, todo: list[str], seconds: float, errors: list[BaseException]) -> None:
    """Execute ``todo`` at a steady pace over ``seconds`` (in a thread, while the test kills the worker)."""
    pause = seconds / len(todo)
    try:
        for statement in todo:
            cql.execute(statement)
            time.sleep(pause)
    except BaseException as error:  # reported by the test
        errors.append(error)


def checkpoint(pg_dsn: str, group_id: str, topic: str) -> int | None:
    """The committed next offset of the topic (None before the first batch; a claim alone stores -1)."""
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT sum(next_offset) FROM _cdc_checkpoints WHERE group_id = %s AND topic = %s"
            " AND next_offset >= 0",
            (group_id, topic),
        ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def topic_end(bootstrap: str, topic: str) -> int:
    return sum(asyncio.run(end_offsets(bootstrap, [topic])).values())


def wait_mid_stream(worker: WorkerProcess, pg_dsn: str, bootstrap: str, topic: str, since: int | None) -> int:
    """Wait until the checkpoint has moved past ``since`` and the topic has records beyond it; returns it."""
    seen: list[int] = []

    def mid_stream() -> bool:
        done = checkpoint(pg_dsn, worker.app_id, topic)
        if done is None or (since is not None and done <= since):
            return False
        seen[:] = [done]
        return topic_end(bootstrap, topic) > done

    try:
        wait_until(mid_stream, 60, f"checkpoint of {topic} did not move past {since} with lag > 0")
    except TimeoutError as error:
        pytest.fail(f"{error}\n{worker.log_tail()}")
    return seen[0]


def wait_agent_quiet(bootstrap: str, topic: str, quiet_s: float = 3.0, timeout: float = 60) -> int:
    """Wait until the topic's end offset has not moved for ``quiet_s`` seconds (the agent has caught up)."""
    last = {"end": -1, "since": time.monotonic()}

    def quiet() -> bool:
        end = topic_end(bootstrap, topic)
        if end != last["end"]:
            last.update(end=end, since=time.monotonic())
        return time.monotonic() - last["since"] >= quiet_s

    wait_until(quiet, timeout, f"the Debezium agent kept writing to {topic}")
    return int(last["end"])


def test_kill_9_mid_batch_loses_and_duplicates_nothing(
    cql: Any,
    keyspace: str,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    topic = f"{topic_prefix}.{keyspace}.{TABLE}"
    topics.append(topic)
    create_cdc_keyspace(cql, keyspace, {TABLE: DEFINITION}, topic_prefix, kafka_bootstrap, agent_log)
    # small batches: the checkpoint moves often; a short session: a killed member's partition comes back fast
    worker = start_worker(
        [keyspace], extra_env={"CDC_SINK__BATCH_SIZE": "25", "CDC_KAFKA__SESSION_TIMEOUT_S": "6"}
    )
    errors: list[BaseException] = []
    todo = statements(random.Random(7), keyspace, STATEMENTS, now_us())
    writer = threading.Thread(target=stream, args=(cql, todo, WRITE_SECONDS, errors), daemon=True)
    writer.start()
    kills: list[tuple[int, int]] = []
    since: int | None = None
    for _ in range(KILLS):
        seen = wait_mid_stream(worker, pg_dsn, kafka_bootstrap, topic, since)
        worker.kill9()
        since = checkpoint(pg_dsn, worker.app_id, topic)  # what the dead worker committed; must move again
        kills.append((seen, topic_end(kafka_bootstrap, topic)))
        worker.start()
    writer.join(WRITE_SECONDS * 3)
    assert not writer.is_alive(), "the CQL writer did not finish"
    assert not errors, errors
    assert all(done < end for done, end in kills), f"a kill happened without lag: {kills}"
    print(f"kills at (checkpoint, end offset): {kills}")

    produced = wait_agent_quiet(kafka_bootstrap, topic)
    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic], timeout=90)
    diffs = compare_keyspace(cql, pg_dsn, keyspace, [TABLE])
    assert all(d.equal for d in diffs), [d.summary() for d in diffs] + [worker.log_tail()]
    with psycopg.connect(pg_dsn) as conn:
        counted = conn.execute(
            "SELECT coalesce(sum(events), 0) FROM _cdc_checkpoints WHERE group_id = %s AND topic = %s",
            (worker.app_id, topic),
        ).fetchone()
    assert counted is not None
    assert counted[0] == produced, f"every record counted exactly once across {KILLS} crashes: {kills}"

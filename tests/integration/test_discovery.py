"""Topic discovery after start-up: a table created while the worker runs is replicated without a restart.

The worker starts with no change topic of its keyspace; once it is up (``[^Worker]: Ready``), the table is
created, and the discovery timer must log ``subscribing to new change topics`` naming the new topic -- after
start-up, not during it -- and apply its rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.testing import (
    StartWorker,
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    wait_applied,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

READY = "[^Worker]: Ready"
DISCOVERED = "subscribing to new change topics"


def wait_logged(worker: WorkerProcess, predicate: Any, timeout: float, message: str) -> None:
    try:
        wait_until(lambda: predicate(worker.log_text()), timeout, message)
    except TimeoutError as error:
        pytest.fail(f"{error}\n--- worker log ---\n{worker.log_tail()}")


def test_table_created_after_start_is_picked_up_without_restart(
    cql: Any,
    keyspace: str,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
) -> None:
    topic = f"{topic_prefix}.{keyspace}.t"
    topics.append(topic)
    worker = start_worker([keyspace])  # no topic of this keyspace exists yet
    wait_logged(worker, lambda text: READY in text, 60, "the worker did not become ready")
    started = len(worker.log_text())

    create_cdc_keyspace(
        cql,
        keyspace,
        {"t": "p int, c int, v int, w text, PRIMARY KEY (p, c)"},
        topic_prefix,
        kafka_bootstrap,
        agent_log,
    )
    for i in range(60):
        cql.execute(f"INSERT INTO {keyspace}.t (p, c, v, w) VALUES ({i % 5}, {i}, {i}, 'w{i}')")
    cql.execute(f"UPDATE {keyspace}.t SET v = 100 WHERE p = 1 AND c = 1")
    cql.execute(f"DELETE FROM {keyspace}.t WHERE p = 2 AND c = 2")
    cql.execute(f"DELETE FROM {keyspace}.t WHERE p = 3 AND c >= 10 AND c < 30")

    def discovered_after_start(text: str) -> bool:
        return any(DISCOVERED in line and topic in line for line in text[started:].splitlines())

    wait_logged(worker, discovered_after_start, 60, f"no {DISCOVERED!r} line naming {topic} after start-up")
    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic], timeout=90)
    diffs = compare_keyspace(cql, pg_dsn, keyspace, ["t"])
    assert all(d.equal for d in diffs), [d.summary() for d in diffs] + [worker.log_tail()]
    assert diffs[0].postgres_rows == 55  # 60 inserted, one row and four by the range deleted
    assert worker.proc is not None
    assert worker.proc.poll() is None, "the worker kept running"

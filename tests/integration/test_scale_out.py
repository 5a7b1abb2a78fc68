"""Two workers of one group share a 4-partition change topic while a random out-of-order workload with
partition and range deletes streams in; a third worker joins mid-stream and leaves again (two rebalances).
Partition and range deletes are keyed without clustering values, so they reach other workers than the rows
they shadow: only the per-Cassandra-partition advisory locks keep the workers' merges from racing."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.clock import now_us
from app.testing import (
    StartWorker,
    WorkerProcess,
    create_cdc_keyspace,
    end_offsets,
    unique,
    wait_applied,
    wait_until,
)
from tests.integration.test_crash import stream, wait_agent_quiet
from tests.integration.test_pipeline_e2e import WORKLOAD, random_statements, wait_converged

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

STATEMENTS = 1200
WRITE_SECONDS = 30.0


def test_two_workers_over_four_partitions_converge_through_a_rebalance(
    cql: Any,
    keyspace: str,
    tmp_path: Path,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    topics: list[str],
) -> None:
    create_cdc_keyspace(cql, keyspace, {"t": WORKLOAD}, topic_prefix, kafka_bootstrap)
    topic = f"{topic_prefix}.{keyspace}.t"
    topics.append(topic)
    partitions = asyncio.run(end_offsets(kafka_bootstrap, [topic]))
    assert len(partitions) == 4, "the stack creates change topics with 4 partitions"
    group = unique("it_scale")

    def worker(name: str) -> WorkerProcess:
        """A worker of the test's group, with its own state and log directory (started at once)."""
        (tmp_path / name).mkdir()
        session = {"CDC_KAFKA__SESSION_TIMEOUT_S": "6"}
        return start_worker([keyspace], workdir=tmp_path / name, app_id=group, extra_env=session)

    errors: list[BaseException] = []
    todo = random_statements(random.Random(11), keyspace, STATEMENTS, now_us())
    writer = threading.Thread(target=stream, args=(cql, todo, WRITE_SECONDS, errors))
    first, second = worker("w1"), worker("w2")
    writer.start()
    writer.join(WRITE_SECONDS / 3)
    third = worker("w3")  # joins: the group rebalances over three members
    # Faust's sticky assignor may leave w3 without a change-topic partition (seen here): wait for the join
    # itself, not for a claim.
    wait_until(lambda: "Joined group" in third.log_text(), 60, "w3 did not join the group")
    assert writer.is_alive(), "w3 must join while the writes stream"
    writer.join(3)
    third.stop()  # leaves mid-stream: back to two
    assert writer.is_alive(), "w3 must leave while the writes stream"
    writer.join(WRITE_SECONDS + 30)
    assert not writer.is_alive()
    assert errors == []
    wait_agent_quiet(kafka_bootstrap, topic)
    wait_applied(pg_dsn, group, kafka_bootstrap, [topic], timeout=180)
    wait_converged(cql, pg_dsn, keyspace, ["t"], first, timeout=60)
    produced = wait_agent_quiet(kafka_bootstrap, topic)  # the agent may add a late duplicate
    wait_applied(pg_dsn, group, kafka_bootstrap, [topic], timeout=60)
    with psycopg.connect(pg_dsn) as conn:
        counted = conn.execute(
            "SELECT coalesce(sum(events), 0) FROM _cdc_checkpoints WHERE group_id = %s", (group,)
        ).fetchone()
    assert counted is not None
    assert counted[0] == produced, "every record applied and counted exactly once across the workers"
    for w in (first, second):
        assert "partitions claimed" in w.log_text(), f"{w.workdir.name} never owned a partition"

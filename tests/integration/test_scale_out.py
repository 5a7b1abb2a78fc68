"""Two workers of one group share a 4-partition change topic while a random out-of-order workload with
partition and range deletes streams in; a third worker joins mid-stream and leaves again (two rebalances).
Partition and range deletes are keyed without clustering values, so they reach other workers than the rows
they shadow: only the per-Cassandra-partition advisory locks keep the workers' merges from racing."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.clock import now_us
from app.testing import (
    WorkerProcess,
    create_cdc_keyspace,
    end_offsets,
    free_port,
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
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    cassandra_contact: tuple[str, int],
    topics: list[str],
) -> None:
    create_cdc_keyspace(cql, keyspace, {"t": WORKLOAD}, topic_prefix, kafka_bootstrap)
    topic = f"{topic_prefix}.{keyspace}.t"
    topics.append(topic)
    assert len(asyncio_end_offsets(kafka_bootstrap, topic)) == 4, (
        "the stack creates change topics with 4 partitions"
    )
    group = unique("it_scale")
    host, port = cassandra_contact

    def worker(name: str) -> WorkerProcess:
        (tmp_path / name).mkdir()
        return WorkerProcess(
            [keyspace],
            tmp_path / name,
            free_port(),
            app_id=group,
            extra_env={"CDC_KAFKA__SESSION_TIMEOUT_S": "6"},
            pg_dsn=pg_dsn,
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=topic_prefix,
            cassandra_host=host,
            cassandra_port=port,
        )

    workers = [worker("w1"), worker("w2"), worker("w3")]
    errors: list[BaseException] = []
    todo = random_statements(random.Random(11), keyspace, STATEMENTS, now_us())
    writer = threading.Thread(target=stream, args=(cql, todo, WRITE_SECONDS, errors))
    try:
        workers[0].start()
        workers[1].start()
        writer.start()
        writer.join(WRITE_SECONDS / 3)
        workers[2].start()  # joins: the partitions are spread over three workers
        # The group rebalances when w3 joins; Faust's sticky assignor may leave w3 without a change-topic
        # partition (seen here), so wait for the join itself, not for a claim.
        wait_until(lambda: "Joined group" in workers[2].log_path.read_text(), 60, "w3 did not join the group")
        assert writer.is_alive(), "w3 must join while the writes stream"
        writer.join(3)
        workers[2].stop()  # leaves mid-stream: back to two
        assert writer.is_alive(), "w3 must leave while the writes stream"
        writer.join(WRITE_SECONDS + 30)
        assert not writer.is_alive()
        assert errors == []
        wait_agent_quiet(kafka_bootstrap, topic)
        wait_applied(pg_dsn, group, kafka_bootstrap, [topic], timeout=180)
        wait_converged(cql, pg_dsn, keyspace, ["t"], workers[0], timeout=60)
        produced = wait_agent_quiet(kafka_bootstrap, topic)  # the agent may add a late duplicate
        wait_applied(pg_dsn, group, kafka_bootstrap, [topic], timeout=60)
        with psycopg.connect(pg_dsn) as conn:
            counted = conn.execute(
                "SELECT coalesce(sum(events), 0) FROM _cdc_checkpoints WHERE group_id = %s", (group,)
            ).fetchone()
        assert counted is not None
        assert counted[0] == produced, "every record applied and counted exactly once across the workers"
        for w in workers[:2]:
            assert "partitions claimed" in w.log_path.read_text(), f"{w.workdir.name} never owned a partition"
    finally:
        for w in workers:
            w.stop()


def asyncio_end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    import asyncio

    return asyncio.run(end_offsets(bootstrap, [topic]))

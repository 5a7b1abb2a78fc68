"""Capture coverage on the real stack: a keyspace and its CDC table created together are missed by the
Debezium agent (3.4.1). The worker reports it (``/health`` capture warning naming the table,
``cdc_uncaptured_tables`` = 1); after ``cdc stack restart debezium`` the table replicates."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest

from app.testing import REPO, StartWorker, create_keyspace, mirror_ids, wait_until, worker_health
from app.topics import list_topics

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]


def uncaptured_metric(web_port: int) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("cdc_uncaptured_tables "):
                return float(line.split()[1])
    return None


def test_a_table_the_agent_missed_is_reported_and_replicates_after_restarting_the_agent(
    cql: Any,
    keyspace: str,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    topics: list[str],
) -> None:
    topic = f"{topic_prefix}.{keyspace}.items"
    topics.append(topic)
    create_keyspace(cql, keyspace)
    cql.execute(f"CREATE TABLE {keyspace}.items (id int PRIMARY KEY, v int) WITH cdc = true")  # same refresh
    for i in range(3):
        cql.execute(f"INSERT INTO {keyspace}.items (id, v) VALUES ({i}, {i})")
    worker = start_worker([keyspace], extra_env={"CDC_SINK__CAPTURE_GRACE_S": "5"})

    def reported() -> bool:
        _, body = worker_health(worker)
        capture = body.get("components", {}).get("capture", {})
        return capture.get("status") == "warn" and f"{keyspace}.items" in capture.get("detail", "")

    try:
        wait_until(reported, 60, "the table the agent missed was not reported")
    except TimeoutError as error:
        if topic in asyncio.run(list_topics(kafka_bootstrap)):
            pytest.skip("the agent captured the table this time (its bug is a race)")
        pytest.fail(f"{error}: {worker_health(worker)}\n{worker.log_tail()}")
    assert worker_health(worker)[0] == 200  # a warning, not an outage
    assert uncaptured_metric(worker.web_port) == 1.0

    restarted = subprocess.run(
        [sys.executable, "-m", "stack", "restart", "debezium"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    written: set[object] = set()

    def replicated() -> bool:
        i = 100 + len(written)
        cql.execute(f"INSERT INTO {keyspace}.items (id, v) VALUES ({i}, {i})")
        written.add(i)
        time.sleep(1)
        return bool(written & set(mirror_ids(pg_dsn, keyspace, "items")))

    try:
        wait_until(replicated, 120, "the table did not replicate after the agent restarted")
    except TimeoutError as error:
        pytest.fail(f"{error}\n{worker.log_tail()}")
    wait_until(
        lambda: uncaptured_metric(worker.web_port) == 0.0, 60, "cdc_uncaptured_tables did not return to 0"
    )

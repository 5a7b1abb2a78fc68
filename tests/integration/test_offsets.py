"""Offsets against a real Kafka: holes in the log are passed, a recreated topic is held and reported.

- A transactional producer writes into a change topic: every commit leaves a marker at an offset no record
  has, so a batch that ends at a transaction's last record stores the marker's offset, and the next record
  lies past it. The worker seeks back once, meets the same hole, and passes it (no seek loop).
- The topic is deleted and created again while the worker is stopped: PostgreSQL's offset now lies beyond
  the topic's end. The restarted worker pauses that partition (``/health`` 503 naming it, nothing skipped);
  ``cdc offsets show --json`` says ``beyond_end``; ``cdc offsets reset ... --to earliest`` lets it resume and
  the new records apply.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from app.clock import now_us
from app.testing import (
    REPO,
    StartWorker,
    WorkerProcess,
    create_keyspace,
    create_topics,
    debezium_source,
    delete_topics,
    mirror_ids,
    produce,
    unique,
    wait_until,
    worker_health,
)
from app.testing import debezium_cell as cell
from app.topics import list_topics

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra")]

TABLE = "items"


def event(keyspace: str, id_: int) -> tuple[bytes, bytes]:
    ts = now_us()
    source = debezium_source(keyspace, TABLE, ts, file="CommitLog-7-0.log", pos=0)
    after = {"id": cell(id_), "v": cell(id_ * 10), "_range_start": None}
    return orjson.dumps({"id": id_}), orjson.dumps(
        {"ts_ms": ts // 1000, "op": "i", "source": source, "after": after}
    )


def produce_transactions(bootstrap: str, topic: str, keyspace: str, batches: list[list[int]]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique("it_tx"))
        await producer.start()
        try:
            for ids in batches:
                async with producer.transaction():
                    for id_ in ids:
                        key, value = event(keyspace, id_)
                        await producer.send(topic, value=value, key=key)
                await asyncio.sleep(2)  # let the worker catch up: its stored offset lands on the marker
        finally:
            await producer.stop()

    asyncio.run(send())


def stored_offset(pg_dsn: str, group: str, topic: str) -> int | None:
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT next_offset FROM _cdc_checkpoints WHERE group_id = %s AND topic = %s AND partition = 0",
            (group, topic),
        ).fetchone()
    return None if row is None else int(row[0])


def cdc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def wait_or_fail(condition: Any, timeout: float, what: str, worker: WorkerProcess) -> None:
    try:
        wait_until(condition, timeout, what)
    except TimeoutError as error:
        pytest.fail(f"{error}\n{worker.log_tail()}")


def test_transaction_markers_are_passed_and_a_recreated_topic_is_held_until_reset(
    cql: Any,
    keyspace: str,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    topics: list[str],
) -> None:
    create_keyspace(cql, keyspace)
    cql.execute(f"CREATE TABLE {keyspace}.{TABLE} (id int PRIMARY KEY, v int)")
    topic = f"{topic_prefix}.{keyspace}.{TABLE}"
    topics.append(topic)
    create_topics(kafka_bootstrap, [topic], partitions=1)
    worker = start_worker([keyspace])

    batches = [[1, 2, 3], [4, 5], [6, 7, 8], [9], [10, 11]]
    produce_transactions(kafka_bootstrap, topic, keyspace, batches)
    expected = [i for ids in batches for i in ids]
    wait_or_fail(
        lambda: mirror_ids(pg_dsn, keyspace, TABLE) == expected,
        90,
        "records after a marker were not applied",
        worker,
    )
    # 11 records and 5 markers: the last record is at offset 14, the last marker at 15
    wait_or_fail(
        lambda: stored_offset(pg_dsn, worker.app_id, topic) == 15,
        30,
        "the checkpoint did not reach 15",
        worker,
    )
    assert "offset hole" in worker.log_text()

    # the topic is recreated while the worker is down
    worker.stop()
    delete_topics(kafka_bootstrap, [topic])
    wait_until(lambda: topic not in _topics(kafka_bootstrap), 60, "the topic was not deleted")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    wait_until(lambda: topic in _topics(kafka_bootstrap), 60, "the topic was not created again")
    produce(kafka_bootstrap, topic, [event(keyspace, 100), event(keyspace, 101)])
    again = start_worker([keyspace], app_id=worker.app_id)

    def held() -> bool:
        code, body = worker_health(again)
        offsets = body.get("components", {}).get("offsets", {})
        return code == 503 and offsets.get("status") == "down" and topic in offsets.get("detail", "")

    wait_or_fail(held, 90, "the offset beyond the recreated topic's end was not reported", again)
    time.sleep(3)
    assert 100 not in mirror_ids(pg_dsn, keyspace, TABLE)  # held, not applied and not skipped
    assert stored_offset(pg_dsn, worker.app_id, topic) == 15

    env = {**again.env(), "CDC_LOG_LEVEL": "WARNING"}
    shown = cdc("offsets", "show", topic, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout.strip().splitlines()[-1])
    assert report["partitions"] == [
        {
            "topic": topic,
            "partition": 0,
            "stored": 15,
            "earliest": 0,
            "end": 2,
            "events": 11,
            "status": "beyond_end",
        }
    ]
    reset = cdc("offsets", "reset", topic, "--to", "earliest", "--json", env=env)
    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout.strip().splitlines()[-1])["reset"] == [
        {"topic": topic, "partition": 0, "from": 15, "to": 0}
    ]
    wait_or_fail(
        lambda: mirror_ids(pg_dsn, keyspace, TABLE)[-2:] == [100, 101],
        90,
        "the reset partition did not resume",
        again,
    )
    wait_or_fail(lambda: worker_health(again)[0] == 200, 60, "/health did not return to 200", again)


def _topics(bootstrap: str) -> list[str]:
    return asyncio.run(list_topics(bootstrap))

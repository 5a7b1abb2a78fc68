"""Dead-letter replay on a real stack (PostgreSQL, Kafka, Cassandra; synthetic Debezium-shaped events).

Events for a table that does not exist yet, and a malformed one, are dead-lettered by a worker; the table is
created, a newer write for one key arrives, and ``cdc dlq replay`` applies the dead letters through the
stream's path: the rows appear, the newer write is not overwritten, a second replay changes nothing, and the
malformed one fails again with its count raised. Then: a rate-limited replay's pace, a scheduled replay across a
worker restart, and two runners of one replay job applying and counting each record once.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

from app.clock import now_us
from app.dlq import store
from app.dlq.replay import run_job
from app.runtime import Runtime
from app.settings import load_settings
from app.testing import (
    WorkerProcess,
    create_keyspace,
    create_topics,
    debezium_source,
    produce,
    run_cdc,
    wait_until,
)
from app.testing import debezium_cell as cell
from models.dlq import DlqFilter, Mode, ReplayRequest

NO_BREAKER = {"CDC_SINK__DLQ_BREAKER_MINIMUM": "100000"}
"""Every event of these topics is a dead letter at first: the dead-letter-rate breaker would pause instead."""

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra")]


def change(keyspace: str, table: str, id_: int, name: str, ts: int) -> tuple[bytes, bytes]:
    after = {"id": cell(id_), "name": cell(name), "_range_start": None}
    event = {"ts_ms": ts // 1000, "op": "i", "source": debezium_source(keyspace, table, ts), "after": after}
    return orjson.dumps({"id": id_}), orjson.dumps(event)


def cdc(worker: WorkerProcess, *args: str) -> tuple[int, dict[str, Any]]:
    return run_cdc(worker, *args, timeout=120)


def letters(pg_dsn: str, topic: str) -> list[dict[str, Any]]:
    with psycopg.connect(pg_dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            """SELECT id, error_type, status, retry_count, replayed_at, history FROM _cdc_dlq_records
               WHERE topic = %s ORDER BY id""",
            (topic,),
        )
        return list(cur.fetchall())


def mirror(pg_dsn: str, keyspace: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_dsn) as conn:
        try:
            return conn.execute(
                f'SELECT id, name, _cdc_cells::text FROM "{keyspace}"."{table}" ORDER BY id'
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def wait_letters(pg_dsn: str, topic: str, count: int, worker: WorkerProcess) -> None:
    try:
        wait_until(lambda: len(letters(pg_dsn, topic)) >= count, 90, f"{count} dead letters of {topic}")
    except TimeoutError as error:
        pytest.fail(f"{error}: {len(letters(pg_dsn, topic))}\n{worker.log_tail()}")


def test_dead_letters_replay_into_the_mirror_without_overwriting_newer_data_and_idempotently(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    topics: list[str],
) -> None:
    later, items = f"{topic_prefix}.{keyspace}.later", f"{topic_prefix}.{keyspace}.items"
    topics.extend([later, items])
    create_keyspace(cql, keyspace)
    cql.execute(f"CREATE TABLE {keyspace}.items (id int PRIMARY KEY, name text)")
    create_topics(kafka_bootstrap, [later, items])
    t0 = now_us() - 60_000_000
    produce(kafka_bootstrap, later, [change(keyspace, "later", i, f"v{i}", t0 + i) for i in range(20)])
    produce(kafka_bootstrap, items, [(b'{"id": 1}', b'{"op": "i", "source": {')])
    worker = start_worker([keyspace], extra_env=NO_BREAKER)
    wait_letters(pg_dsn, later, 20, worker)
    wait_letters(pg_dsn, items, 1, worker)
    assert {r["error_type"] for r in letters(pg_dsn, later)} == {"unknown_table"}
    assert {r["status"] for r in letters(pg_dsn, later)} == {"pending"}

    # The table is created; a newer write of id 0 arrives through the stream.
    cql.execute(f"CREATE TABLE {keyspace}.later (id int PRIMARY KEY, name text)")
    produce(kafka_bootstrap, later, [change(keyspace, "later", 0, "newer", t0 + 1_000_000)])
    wait_until(
        lambda: mirror(pg_dsn, keyspace, "later")[:1] and mirror(pg_dsn, keyspace, "later")[0][1] == "newer",
        60,
        "the newer write was not applied",
    )

    rc, dry = cdc(worker, "dlq", "replay", "--reason", "unknown_table", "--dry-run")
    assert (rc, dry["matched"]) == (0, 20)
    assert mirror(pg_dsn, keyspace, "later")[0][1] == "newer"
    assert len(mirror(pg_dsn, keyspace, "later")) == 1

    rc, done = cdc(worker, "dlq", "replay", "--reason", "unknown_table")
    assert rc == 0, done
    assert (done["status"], done["matched"], done["replayed"], done["failed"]) == ("done", 20, 20, 0)
    rows = mirror(pg_dsn, keyspace, "later")
    assert [(r[0], r[1]) for r in rows] == [(0, "newer"), *[(i, f"v{i}") for i in range(1, 20)]]
    replayed = letters(pg_dsn, later)
    assert {(r["status"], r["retry_count"]) for r in replayed} == {("replayed", 1)}
    assert all(r["replayed_at"] is not None and len(r["history"]) == 1 for r in replayed)

    # A second replay finds nothing to do; forcing the replayed ones through again changes nothing.
    rc, again = cdc(worker, "dlq", "replay", "--reason", "unknown_table")
    assert (rc, again["matched"], again["replayed"]) == (0, 0, 0)
    rc, forced = cdc(worker, "dlq", "replay", "--table", f"{keyspace}.later", "--status", "replayed")
    assert (rc, forced["replayed"]) == (0, 20)
    assert mirror(pg_dsn, keyspace, "later") == rows

    # The malformed event fails again: new attempt counted, exit code 4.
    rc, bad = cdc(worker, "dlq", "replay", "--reason", "malformed_event", "--table", f"{keyspace}.items")
    assert (rc, bad["failed"], bad["replayed"]) == (4, 1, 0)
    [letter] = letters(pg_dsn, items)
    assert (letter["status"], letter["retry_count"], letter["error_type"]) == ("failed", 1, "malformed_event")

    rc, listed = cdc(worker, "dlq", "list", "--table", f"{keyspace}.later", "--limit", "15")
    assert (rc, listed["total"], len(listed["records"])) == (0, 20, 15)
    rc, page2 = cdc(
        worker, "dlq", "list", "--table", f"{keyspace}.later", "--after", str(listed["next_after"])
    )
    assert [r["id"] for r in listed["records"] + page2["records"]] == [r["id"] for r in replayed]
    rc, shown = cdc(worker, "dlq", "show", str(letter["id"]))
    assert rc == 0
    assert shown["value"] == '{"op": "i", "source": {'
    assert len(shown["history"]) == 1
    rc, closed = cdc(worker, "dlq", "ignore", str(letter["id"]), "--note", "garbage from a test")
    assert (rc, closed["ids"]) == (0, [letter["id"]])
    rc, missing = cdc(worker, "dlq", "show", "999999999")
    assert rc == 3
    assert missing["error"]["code"] == "not_found"

    # Purge: closed ones only unless told; the failed-then-ignored one and the replayed ones go.
    rc, kept = cdc(
        worker, "dlq", "purge", "--older-than", "0s", "--table", f"{keyspace}.later", "--reason", "x"
    )
    assert (rc, kept["purged"]) == (0, 0)
    rc, purged = cdc(worker, "dlq", "purge", "--older-than", "0s", "--table", f"{keyspace}.later")
    assert (rc, purged["purged"]) == (0, 20)
    assert letters(pg_dsn, later) == []
    rc, purged = cdc(worker, "dlq", "purge", "--older-than", "1d", "--table", f"{keyspace}.items")
    assert (rc, purged["purged"]) == (0, 0)


def test_rate_limited_scheduled_across_a_restart_and_two_runners_of_one_job(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    cassandra_contact: tuple[str, int],
    topics: list[str],
) -> None:
    names = {"paced": 500, "scheduled": 20, "shared": 400}
    topic = {n: f"{topic_prefix}.{keyspace}.{n}" for n in names}
    topics.extend(topic.values())
    create_keyspace(cql, keyspace)
    create_topics(kafka_bootstrap, list(topic.values()))
    t0 = now_us()
    for name, count in names.items():
        produce(
            kafka_bootstrap, topic[name], [change(keyspace, name, i, f"v{i}", t0 + i) for i in range(count)]
        )
    worker = start_worker([keyspace], extra_env=NO_BREAKER)
    for name, count in names.items():
        wait_letters(pg_dsn, topic[name], count, worker)
    for name in names:
        cql.execute(f"CREATE TABLE {keyspace}.{name} (id int PRIMARY KEY, name text)")

    # Rate-limited: 500 records at 100/s take about 5 s.
    rc, paced = cdc(
        worker, "dlq", "replay", "--table", f"{keyspace}.paced", "--mode", "rate-limited", "--rate", "100"
    )
    assert (rc, paced["replayed"]) == (0, 500), paced
    print(f"rate-limited replay of 500 at 100/s took {paced['seconds']} s")  # shown with pytest -rP
    assert 4.5 <= paced["seconds"] <= 9.0, paced
    assert len(mirror(pg_dsn, keyspace, "paced")) == 500

    # Scheduled 15 s ahead; the worker is restarted before that; the new one fires it at its time.
    at = (datetime.now(UTC) + timedelta(seconds=15)).isoformat()
    rc, scheduled = cdc(
        worker, "dlq", "replay", "--table", f"{keyspace}.scheduled", "--mode", "scheduled", "--at", at
    )
    assert (rc, scheduled["status"]) == (0, "scheduled")
    worker.stop()
    assert mirror(pg_dsn, keyspace, "scheduled") == []
    second = start_worker([keyspace], extra_env=NO_BREAKER)

    def job() -> dict[str, Any]:
        with psycopg.connect(pg_dsn) as conn:
            found = store.job(conn, int(scheduled["replay_id"]))
        assert found is not None
        return found

    try:
        wait_until(lambda: job()["status"] == "done", 90, "the scheduled replay did not run")
    except TimeoutError as error:
        pytest.fail(f"{error}: {job()}\n{second.log_tail()}")
    final = job()
    assert final["started_at"] >= final["scheduled_at"]
    assert (final["replayed"], final["owner"].split("@")[0]) == (20, second.app_id)
    assert len(mirror(pg_dsn, keyspace, "scheduled")) == 20

    # Two runners (separate connections and Cassandra sessions) of one job: each record once.
    host, port = cassandra_contact
    settings = load_settings(
        postgres={"dsn": pg_dsn},
        kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": topic_prefix},
        cassandra={"hosts": [host], "port": port},
    )
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        shared = store.create_job(
            conn, ReplayRequest(DlqFilter(table=f"{keyspace}.shared"), Mode.RATE_LIMITED, 400.0), "test"
        )
    counts = asyncio.run(_two_runners(settings, shared))
    assert sum(counts) == 400, counts
    assert min(counts) > 0, counts
    with psycopg.connect(pg_dsn) as conn:
        final_shared = store.job(conn, int(shared["id"]))
    assert final_shared is not None
    assert (final_shared["status"], final_shared["matched"], final_shared["replayed"]) == ("done", 400, 400)
    rows = letters(pg_dsn, topic["shared"])
    assert {(r["status"], r["retry_count"], len(r["history"])) for r in rows} == {("replayed", 1, 1)}
    assert len(mirror(pg_dsn, keyspace, "shared")) == 400


async def _two_runners(settings: Any, job: dict[str, Any]) -> list[int]:
    runtimes = [Runtime(settings), Runtime(settings)]
    done = [0, 0]
    try:
        for runtime in runtimes:
            await runtime.replayer()
        claimed = await asyncio.to_thread((await runtimes[0].replayer()).claim, 60.0, int(job["id"]))
        assert claimed is not None

        async def run(i: int) -> None:
            before = time.monotonic()
            replayer = await runtimes[i].replayer()
            original = replayer.chunk

            def chunk(job_id: int, size: int) -> tuple[int, int] | None:
                result = original(job_id, size)
                if result is not None:
                    done[i] += sum(result)
                return result

            replayer.chunk = chunk  # type: ignore[method-assign]
            await run_job(replayer, claimed, runtimes[i].call)
            assert time.monotonic() - before < 60

        await asyncio.gather(run(0), run(1))
    finally:
        for runtime in runtimes:
            runtime.close()
    return done

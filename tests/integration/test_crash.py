"""Crashes mid-batch: ``kill -9`` of a worker while CQL statements stream, several times per run.

Each kill waits for a moment when the worker is demonstrably inside the stream: its checkpoint in
``_cdc_checkpoints`` has moved since it (re)started AND Kafka holds records beyond it (lag > 0), so batches
are being applied when the process dies. With two workers of one group the victim is the owner of such a
partition (by its latest claim) while the other keeps running. Afterwards PostgreSQL must equal Cassandra row
by row, and the ``events`` counters must add up to the topic's end offsets: every record counted exactly once.
A graceful stop (SIGTERM) mid-stream is held to the same and must also finish its batch and close its pools.
"""

from __future__ import annotations

import ast
import asyncio
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psycopg
import pytest

from app.clock import now_us
from app.testing import (
    StartWorker,
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    end_offsets,
    topic_records,
    unique,
    wait_applied,
    wait_until,
)
from tests.integration.workloads import RANDOM_DEFINITION, random_statements

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

TABLE = "t"
DEFINITION = RANDOM_DEFINITION
KILLS = 3
KILLS_OF_TWO = 2
STATEMENTS = 1500
WRITE_SECONDS = 25.0
TAIL_SECONDS = 5.0
WORKER_ENV = {"CDC_SINK__BATCH_SIZE": "25", "CDC_KAFKA__SESSION_TIMEOUT_S": "6"}
"""Small batches: the checkpoint moves often; a short session: a killed member's partitions come back fast."""
CLAIMED = re.compile(r"partitions claimed\s+offsets=(\{[^}]*\})")

_T = TypeVar("_T")


def statements(rng: random.Random, keyspace: str, n: int, base_ts: int) -> list[str]:
    return random_statements(rng, f"{keyspace}.{TABLE}", n, base_ts)


def stream(
    cql: Any,
    todo: list[str],
    seconds: float,
    errors: list[BaseException],
    stop: threading.Event | None = None,
) -> None:
    """Execute ``todo`` at a steady pace over ``seconds`` (in a thread, while the test kills the worker), or
    until ``stop`` is set."""
    pause = seconds / len(todo)
    try:
        for statement in todo:
            if stop is not None and stop.is_set():
                return
            cql.execute(statement)
            time.sleep(pause)
    except BaseException as error:  # reported by the test
        errors.append(error)


def start_writer(
    cql: Any, keyspace: str, seed: int, stop: threading.Event | None = None
) -> tuple[threading.Thread, list[BaseException]]:
    """:func:`stream` random statements in a thread (started), :data:`STATEMENTS` per :data:`WRITE_SECONDS`:
    that many, or with ``stop`` up to three times as many, until it is set (the kills need not fit a fixed
    window on a slow machine)."""
    scale = 1 if stop is None else 3
    errors: list[BaseException] = []
    todo = statements(random.Random(seed), keyspace, scale * STATEMENTS, now_us())
    args = (cql, todo, scale * WRITE_SECONDS, errors, stop)
    writer = threading.Thread(target=stream, args=args, daemon=True)
    writer.start()
    return writer, errors


def finish_writer(writer: threading.Thread, errors: list[BaseException]) -> None:
    writer.join(WRITE_SECONDS * 3)
    assert not writer.is_alive(), "the CQL writer did not finish"
    assert not errors, errors


def checkpoints(pg_dsn: str, group_id: str, topic: str) -> dict[int, int]:
    """The committed next offset of each partition of the topic (a claim alone stores -1)."""
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT partition, next_offset FROM _cdc_checkpoints WHERE group_id = %s AND topic = %s",
            (group_id, topic),
        ).fetchall()
    return {int(partition): int(offset) for partition, offset in rows}


def checkpoint(pg_dsn: str, group_id: str, topic: str) -> int | None:
    """The committed next offset of the topic (None before the first batch; a claim alone stores -1)."""
    done = [offset for offset in checkpoints(pg_dsn, group_id, topic).values() if offset >= 0]
    return sum(done) if done else None


def partition_ends(bootstrap: str, topic: str) -> dict[int, int]:
    return {partition: end for (_, partition), end in asyncio.run(end_offsets(bootstrap, [topic])).items()}


def topic_end(bootstrap: str, topic: str) -> int:
    return sum(partition_ends(bootstrap, topic).values())


def wait_or_fail(condition: Callable[[], _T | None], message: str, workers: Sequence[WorkerProcess]) -> _T:
    """:func:`wait_until` (60 s) returns the condition's result; fail with the workers' log tails on timeout,
    and at once when one of them has exited by itself (the test kills and restarts them in between)."""

    def running() -> _T | None:
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                pytest.fail(
                    f"worker {w.workdir.name} exited by itself ({w.proc.returncode}):\n{w.log_tail()}"
                )
        return condition()

    try:
        result = wait_until(running, 60, message)
    except TimeoutError as error:
        pytest.fail("\n".join([str(error), *(w.log_tail() for w in workers)]))
    assert result is not None
    return result


def wait_mid_stream(worker: WorkerProcess, pg_dsn: str, bootstrap: str, topic: str, since: int | None) -> int:
    """Wait until the checkpoint has moved past ``since`` and the topic has records beyond it; returns it."""
    seen: list[int] = []

    def mid_stream() -> bool:
        done = checkpoint(pg_dsn, worker.app_id, topic)
        if done is None or (since is not None and done <= since):
            return False
        seen[:] = [done]
        return topic_end(bootstrap, topic) > done

    wait_or_fail(mid_stream, f"checkpoint of {topic} did not move past {since} with lag > 0", [worker])
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


def explain(
    cql: Any, pg_dsn: str, bootstrap: str, keyspace: str, topic: str, keys: Sequence[Any]
) -> list[str]:
    """For a failure message: per differing row, Cassandra's write times, the mirror's cell state and every
    change event that touched its partition (Kafka partition:offset, op, write time, values)."""
    records = asyncio.run(topic_records(bootstrap, topic))
    with psycopg.connect(pg_dsn) as conn:
        letters = conn.execute(
            'SELECT partition, "offset", error_type, error_message FROM _cdc_dlq_records WHERE topic = %s',
            (topic,),
        ).fetchall()
    out = [f"dead letters of {topic}: {letters}"]
    with psycopg.connect(pg_dsn) as conn:
        for p, c in keys:
            row = cql.execute(
                f"SELECT v, writetime(v), tags, writetime(tags) FROM {keyspace}.{TABLE} WHERE p = %s AND c = %s",
                (p, c),
            ).one()
            cells = conn.execute(
                f'SELECT v, tags, _cdc_cells FROM "{keyspace}"."{TABLE}" WHERE p = %s AND c = %s', (p, c)
            ).fetchone()
            out.append(f"row {(p, c)}: cassandra {tuple(row) if row else None}; mirror {cells}")
            out.extend(_events_of(records, p, c))
    return out


def _events_of(records: Sequence[Any], p: int, c: int) -> list[str]:
    """The change events of row ``(p, c)`` and its partition's range deletes, one line each."""
    lines = []
    for r in records:
        key, value = orjson.loads(r.key), orjson.loads(r.value) if r.value else None
        if key.get("p") != p or value is None:
            continue
        after = {k: v.get("value", v) for k, v in (value.get("after") or {}).items() if v}
        if key.get("c") in (c, None) or value.get("op") == "r":
            lines.append(
                f"  {r.partition}:{r.offset} {value.get('op')} ts={value['source']['ts_us']} {after}"
            )
    return lines


def assert_exactly_once(
    cql: Any,
    pg_dsn: str,
    bootstrap: str,
    keyspace: str,
    topic: str,
    workers: Sequence[WorkerProcess],
    kills: Sequence[object],
) -> None:
    """Once the agent and the group (``workers``' app id) have caught up: PostgreSQL equals Cassandra row by
    row, and the group's ``events`` counters add up to the topic's end offsets (``kills``: for the message)."""
    group = workers[0].app_id
    produced = wait_agent_quiet(bootstrap, topic)
    wait_applied(pg_dsn, group, bootstrap, [topic], timeout=90)
    diffs = compare_keyspace(cql, pg_dsn, keyspace, [TABLE])
    if not all(d.equal for d in diffs):
        # A re-compare tells a late event (equal by now) from a wrong merge (still different) in the message.
        time.sleep(15)
        later = compare_keyspace(cql, pg_dsn, keyspace, [TABLE])
        pytest.fail(
            "\n".join(
                [
                    *(
                        f"{d.summary()} missing={d.missing} extra={d.extra} different={d.different}"
                        for d in diffs
                    ),
                    f"15 s later: end offsets {partition_ends(bootstrap, topic)} (quiet at {produced})",
                    *(d.summary() for d in later),
                    *explain(
                        cql, pg_dsn, bootstrap, keyspace, topic, [k for d in diffs for k in d.different]
                    ),
                    *(w.log_tail() for w in workers),
                ]
            )
        )
    with psycopg.connect(pg_dsn) as conn:
        counted = conn.execute(
            "SELECT coalesce(sum(events), 0) FROM _cdc_checkpoints WHERE group_id = %s AND topic = %s",
            (group, topic),
        ).fetchone()
    assert counted is not None
    assert counted[0] == produced, f"every record counted exactly once across {len(kills)} crashes: {kills}"


@pytest.fixture
def topic(
    cql: Any, keyspace: str, kafka_bootstrap: str, topic_prefix: str, agent_log: Path, topics: list[str]
) -> str:
    """The crash table's change topic, captured by the agent (dropped after the test)."""
    name = f"{topic_prefix}.{keyspace}.{TABLE}"
    topics.append(name)
    create_cdc_keyspace(cql, keyspace, {TABLE: DEFINITION}, topic_prefix, kafka_bootstrap, agent_log)
    return name


def test_kill_9_mid_batch_loses_and_duplicates_nothing(
    cql: Any, keyspace: str, topic: str, start_worker: StartWorker, pg_dsn: str, kafka_bootstrap: str
) -> None:
    worker = start_worker([keyspace], extra_env=WORKER_ENV)
    writer, errors = start_writer(cql, keyspace, seed=7)
    kills: list[tuple[int, int]] = []
    since: int | None = None
    for _ in range(KILLS):
        seen = wait_mid_stream(worker, pg_dsn, kafka_bootstrap, topic, since)
        worker.kill9()
        since = checkpoint(pg_dsn, worker.app_id, topic)  # what the dead worker committed; must move again
        kills.append((seen, topic_end(kafka_bootstrap, topic)))
        worker.start()
    finish_writer(writer, errors)
    assert all(done < end for done, end in kills), f"a kill happened without lag: {kills}"
    print(f"kills at (checkpoint, end offset): {kills}")
    assert_exactly_once(cql, pg_dsn, kafka_bootstrap, keyspace, topic, [worker], kills)


SIGTERMS = 2


def test_sigterm_mid_stream_finishes_the_batch_closes_the_pools_and_the_restart_is_exact(
    cql: Any, keyspace: str, topic: str, start_worker: StartWorker, pg_dsn: str, kafka_bootstrap: str
) -> None:
    """SIGTERM while batches are applied: the worker finishes its batch in flight, closes its pools and exits
    well within the chart's 60 s grace period (``stop`` would SIGKILL after 30 s); restarted, it goes on
    where PostgreSQL says, and nothing is lost or counted twice."""
    worker = start_worker([keyspace], extra_env=WORKER_ENV)
    writer, errors = start_writer(cql, keyspace, seed=11)
    stops: list[tuple[int, int, float]] = []
    since: int | None = None
    for _ in range(SIGTERMS):
        seen = wait_mid_stream(worker, pg_dsn, kafka_bootstrap, topic, since)
        log_from = len(worker.log_text())
        started = time.monotonic()
        worker.stop()  # SIGTERM to the process group, then waits for the exit
        took = time.monotonic() - started
        assert worker.proc is not None
        assert worker.proc.returncode != -9, f"SIGKILLed after 30 s: {worker.log_tail()}"
        said = worker.log_text()[log_from:]
        assert "shutdown: batch loop stopped, nothing in flight" in said, said[-3000:]
        assert "shutdown: PostgreSQL pool and Cassandra session closed" in said, said[-3000:]
        since = checkpoint(pg_dsn, worker.app_id, topic)
        stops.append((seen, topic_end(kafka_bootstrap, topic), round(took, 1)))
        worker.start()
    finish_writer(writer, errors)
    assert all(done < end for done, end, _ in stops), f"a SIGTERM came without lag: {stops}"
    print(f"SIGTERMs at (checkpoint, end offset, seconds to exit): {stops}")
    assert_exactly_once(cql, pg_dsn, kafka_bootstrap, keyspace, topic, [worker], stops)


@dataclass
class Member:
    """A worker of a group that the test kills and starts again in place; ``log_from`` is where the log of
    its current process begins (the log file is appended to across restarts)."""

    name: str
    worker: WorkerProcess
    log_from: int = 0

    def kill9_and_restart(self) -> None:
        self.worker.kill9()
        self.log_from = len(self.worker.log_text())
        self.worker.start()

    def claimed(self, topic: str) -> dict[int, int] | None:
        """The partitions of ``topic`` in the latest claim of the current process, each with the offset it
        resumed at (-1: none stored); None before the process has claimed any."""
        claims = CLAIMED.findall(self.worker.log_text()[self.log_from :])
        if not claims:
            return None
        prefix = f"{topic}:"
        offsets: dict[str, int | None] = ast.literal_eval(claims[-1])
        return {
            int(tp.removeprefix(prefix)): -1 if offset is None else offset
            for tp, offset in offsets.items()
            if tp.startswith(prefix)
        }


def owner_mid_stream(
    victim: Member, others: Sequence[Member], pg_dsn: str, bootstrap: str, topic: str
) -> tuple[int, int, int] | None:
    """``(partition, checkpoint, end offset)`` of a partition that ``victim`` owns (in its latest claim and
    in none of the ``others``', each of which has claimed since its start: the group has settled) whose
    checkpoint has moved since that claim with records beyond it; None while there is none."""
    mine = victim.claimed(topic)
    theirs = [other.claimed(topic) for other in others]
    if mine is None or None in theirs:
        return None
    taken = {partition for claim in theirs if claim is not None for partition in claim}
    done = checkpoints(pg_dsn, victim.worker.app_id, topic)
    ends = partition_ends(bootstrap, topic)
    for partition, resumed in sorted(mine.items()):
        moved = done.get(partition, -1)
        if partition not in taken and resumed < moved < ends.get(partition, 0):
            return partition, moved, ends[partition]
    return None


def test_kill_9_of_one_of_two_workers_mid_batch_loses_and_duplicates_nothing(
    cql: Any,
    keyspace: str,
    topic: str,
    tmp_path: Path,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
) -> None:
    """Two workers of one group over the 4-partition topic; A and B are killed in turn, each while applying a
    partition it owns, and started again (same app id) while the other keeps running."""
    assert len(partition_ends(kafka_bootstrap, topic)) == 4, (
        "the stack creates change topics with 4 partitions"
    )
    group = unique("it_crash2")

    def member(name: str) -> Member:
        (tmp_path / name).mkdir()
        return Member(
            name, start_worker([keyspace], workdir=tmp_path / name, app_id=group, extra_env=WORKER_ENV)
        )

    members = [member("a"), member("b")]
    workers = [m.worker for m in members]
    stop = threading.Event()
    writer, errors = start_writer(cql, keyspace, seed=8, stop=stop)
    kills: list[tuple[str, tuple[int, int, int]]] = []
    for i in range(KILLS_OF_TWO):
        victim = members[i % 2]  # A, then B, ...
        others = [m for m in members if m is not victim]
        kill = wait_or_fail(
            partial(owner_mid_stream, victim, others, pg_dsn, kafka_bootstrap, topic),
            f"worker {victim.name} never owned a partition of {topic} with a moved checkpoint and lag > 0",
            workers,
        )
        victim.kill9_and_restart()
        kills.append((victim.name, kill))
        assert all(o.worker.proc is not None and o.worker.proc.poll() is None for o in others), kills
    writer.join(TAIL_SECONDS)  # writes go on while the last victim rejoins the group
    stop.set()
    finish_writer(writer, errors)
    print(f"kills at (worker, (partition, checkpoint, end offset)): {kills}")
    assert_exactly_once(cql, pg_dsn, kafka_bootstrap, keyspace, topic, workers, kills)
    assert all(w.proc is not None and w.proc.poll() is None for w in workers), "a worker died by itself"

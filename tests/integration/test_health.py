"""``/health`` over HTTP: 503 with the postgres component down (and why) while PostgreSQL is unreachable for
the worker, 200 again once it is back.

The shared PostgreSQL is never stopped: the worker reaches it through a :class:`app.testing.TcpProxy`, which
the test cuts and restores. Events keep arriving, so batches use PostgreSQL and notice the outage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from psycopg.conninfo import conninfo_to_dict

from app.clock import now_us
from app.testing import (
    StartWorker,
    TcpProxy,
    create_keyspace,
    create_topics,
    debezium_source,
    produce,
    wait_applied,
    wait_until,
    worker_health,
)
from app.testing import debezium_cell as cell

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra")]

TABLE = "items"


def postgres_status(body: dict[str, Any]) -> dict[str, Any]:
    return dict(body.get("components", {}).get("postgres", {}))


def write(bootstrap: str, keyspace: str, topic: str, id_: int) -> None:
    ts = now_us()
    source = debezium_source(keyspace, TABLE, ts, file="CommitLog-7-0.log", pos=0)
    after = {"id": cell(id_), "v": cell(id_ * 10), "_range_start": None}
    event = orjson.dumps({"ts_ms": ts // 1000, "op": "i", "source": source, "after": after})
    produce(bootstrap, topic, [(orjson.dumps({"id": id_}), event)])


@pytest.fixture
def proxy(pg_dsn: str) -> Iterator[TcpProxy]:
    params = conninfo_to_dict(pg_dsn)
    with TcpProxy(str(params.get("host") or "127.0.0.1"), int(str(params.get("port") or 5432))) as p:
        yield p


def test_health_is_503_while_postgres_is_unreachable_and_200_after(
    cql: Any,
    keyspace: str,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    topics: list[str],
    proxy: TcpProxy,
) -> None:
    create_keyspace(cql, keyspace)
    cql.execute(f"CREATE TABLE {keyspace}.{TABLE} (id int PRIMARY KEY, v int)")
    topic = f"{topic_prefix}.{keyspace}.{TABLE}"
    topics.append(topic)
    create_topics(kafka_bootstrap, [topic])
    write(kafka_bootstrap, keyspace, topic, 1)
    worker = start_worker([keyspace], pg_dsn=proxy.dsn(pg_dsn))
    seen: list[tuple[int, dict[str, Any]]] = []

    def answers(code: int, postgres: str) -> bool:
        seen[:] = [worker_health(worker)]
        status, body = seen[0]
        return status == code and postgres_status(body).get("status") == postgres

    def wait_health(code: int, postgres: str, what: str) -> None:
        try:
            wait_until(lambda: answers(code, postgres), 90, what)
        except TimeoutError as error:
            pytest.fail(f"{error}; last /health: {seen}\n{worker.log_tail()}")

    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic], timeout=90)
    wait_health(200, "up", "/health did not report 200 with postgres up")

    proxy.cut()
    write(kafka_bootstrap, keyspace, topic, 2)  # a batch must use PostgreSQL to notice
    wait_health(503, "down", "/health did not report 503 with postgres down while it was unreachable")
    body = seen[0][1]
    assert body["status"] == "degraded"
    assert postgres_status(body)["detail"], f"no reason given: {body}"

    proxy.restore()
    wait_health(200, "up", "/health did not return to 200 after PostgreSQL came back")
    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic], timeout=90)

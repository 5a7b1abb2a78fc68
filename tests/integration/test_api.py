"""Contract tests of the management API against a real worker (PostgreSQL, Kafka, Cassandra): every endpoint
of the OpenAPI document is called, its status codes checked and its body validated against the document's
schema (jsonschema), the 401/403 paths, pagination, and the redaction of secrets in ``/config``."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import orjson
import psycopg
import pytest
from jsonschema import Draft202012Validator

from app.api.openapi import PATHS, document
from app.clock import now_us
from app.testing import WorkerProcess, create_keyspace, create_topics, debezium_source, produce, wait_until
from app.testing import debezium_cell as cell

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra")]

TOKEN = "test-token-0f3c9a7d51e2b846"
PG_PASSWORD = "pg-secret-in-the-dsn"
DOC = document("test")


class Api:
    def __init__(self, worker: WorkerProcess) -> None:
        self.base = f"http://127.0.0.1:{worker.web_port}"
        self.called: set[tuple[str, str]] = set()

    def __call__(
        self, method: str, path: str, token: str | None = TOKEN, body: Any = None, template: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        self.called.add((method.lower(), template or path.split("?")[0]))
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, raw, kind = response.status, response.read(), response.headers["Content-Type"]
        except urllib.error.HTTPError as error:
            status, raw, kind = error.code, error.read(), error.headers["Content-Type"]
        except OSError:
            return 0, {}  # the web server is not up yet
        if kind and kind.startswith("application/json"):
            return status, json.loads(raw)
        return status, raw.decode()


def conforms(body: Any, method: str, template: str, status: int) -> None:
    """``body`` matches the document's schema for that operation and status."""
    response = PATHS[template][method.lower()]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": DOC["components"]}).validate(body)


def expect(api: Api, method: str, path: str, status: int, template: str | None = None, **kw: Any) -> Any:
    template = template or path.split("?")[0]
    got, body = api(method, path, template=template, **kw)
    assert got == status, (method, path, got, body)
    conforms(body, method, template, status)
    return body


def refused(api: Api, method: str, path: str, template: str | None = None, body: Any = None) -> None:
    """401 without a token, 403 with a wrong one, both with the error body."""
    template = template or path
    expect(api, method, path, 401, template, token=None, body=body)
    error = expect(api, method, path, 403, template, token="wrong-token-wrong-token", body=body)
    assert error["error"]["code"] == "forbidden"


def start(start_worker: Any, keyspace: str, pg_dsn: str, **env: str) -> tuple[WorkerProcess, Api]:
    dsn = pg_dsn.replace("postgres@", f"postgres:{PG_PASSWORD}@", 1)
    assert PG_PASSWORD in dsn, pg_dsn
    worker = start_worker([keyspace], pg_dsn=dsn, extra_env=env)
    api = Api(worker)
    try:
        wait_until(lambda: api("GET", "/ready")[0] == 200, 90, "the worker never got ready")
    except TimeoutError as error:
        pytest.fail(f"{error}: {api('GET', '/ready')}\n{worker.log_tail()}")
    return worker, api


def test_every_endpoint_answers_as_documented(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    topics: list[str],
) -> None:
    topic = f"{topic_prefix}.{keyspace}.t"
    topics.append(topic)
    create_keyspace(cql, keyspace)
    cql.execute(f"CREATE TABLE {keyspace}.t (id int PRIMARY KEY, name text)")
    create_topics(kafka_bootstrap, [topic])
    ts = now_us()
    good = [
        (
            orjson.dumps({"id": i}),
            orjson.dumps(
                {
                    "ts_ms": ts // 1000,
                    "op": "i",
                    "source": debezium_source(keyspace, "t", ts + i),
                    "after": {"id": cell(i), "name": cell(f"n{i}"), "_range_start": None},
                }
            ),
        )
        for i in range(2)
    ]
    bad = [(b'{"id": 9}', b"{not json %d" % i) for i in range(3)]
    produce(kafka_bootstrap, topic, good + bad)
    dlq_topic = f"{keyspace}_dlq"
    topics.append(dlq_topic)
    worker, api = start(
        start_worker,
        keyspace,
        pg_dsn,
        CDC_WEB__TOKEN=TOKEN,
        CDC_KAFKA__DLQ_TOPIC=dlq_topic,
        CDC_RECONCILE__RECHECK_AFTER_S="1",
        CDC_RECONCILE__LAG_ALLOWANCE_S="0",
    )

    health = expect(api, "GET", "/health", 200)
    assert health["components"]["postgres"]["status"] == "up"
    ready = expect(api, "GET", "/ready", 200)
    assert ready["ready"] is True
    assert ready["checks"]["partitions_assigned"] is True
    status, metrics = api("GET", "/metrics")
    assert status == 200
    assert "cdc_events_applied_total" in metrics

    # dead letters, paged
    refused(api, "GET", "/dlq/records")
    wait_until(
        lambda: api("GET", f"/dlq/records?table={keyspace}.t")[1].get("total") == 3, 60, "3 dead letters"
    )
    first = expect(api, "GET", f"/dlq/records?table={keyspace}.t&limit=2", 200)
    assert (first["total"], len(first["records"])) == (3, 2)
    rest = expect(api, "GET", f"/dlq/records?table={keyspace}.t&limit=2&after={first['next_after']}", 200)
    assert len(rest["records"]) == 1
    assert rest["next_after"] is None
    ids = [r["id"] for r in first["records"] + rest["records"]]
    assert ids == sorted(ids)
    assert {r["error_type"] for r in first["records"]} == {"malformed_event"}
    expect(api, "GET", "/dlq/records?limit=0", 400)
    expect(api, "GET", "/dlq/records?status=done", 400)

    one = f"/dlq/records/{ids[0]}"
    refused(api, "GET", one, "/dlq/records/{id}")
    record = expect(api, "GET", one, 200, "/dlq/records/{id}")
    assert record["value"] == "{not json 0"
    assert record["status"] == "pending"
    expect(api, "GET", "/dlq/records/999999999", 404, "/dlq/records/{id}")
    expect(api, "GET", "/dlq/records/abc", 400, "/dlq/records/{id}")

    resolve = f"/dlq/records/{ids[0]}/resolve"
    refused(api, "POST", resolve, "/dlq/records/{id}/resolve", body={})
    done = expect(api, "POST", resolve, 200, "/dlq/records/{id}/resolve", body={"note": "fixed upstream"})
    assert done == {"id": ids[0], "status": "resolved"}
    expect(api, "POST", "/dlq/records/999999999/resolve", 404, "/dlq/records/{id}/resolve", body={})
    ignored = expect(api, "POST", f"/dlq/records/{ids[1]}/ignore", 200, "/dlq/records/{id}/ignore", body={})
    assert ignored["status"] == "ignored"

    # a replay: accepted, run by the worker's timer, its status
    refused(api, "POST", "/dlq/replay", body={})
    expect(api, "POST", "/dlq/replay", 400, body={"mode": "sometime"})
    expect(api, "POST", "/dlq/replay", 400, body={"filter": {"colour": "red"}})
    accepted = expect(api, "POST", "/dlq/replay", 202, body={"filter": {"table": f"{keyspace}.t"}})
    job = f"/dlq/replay/{accepted['replay_id']}"
    refused(api, "GET", job, "/dlq/replay/{id}")
    wait_until(
        lambda: api("GET", job, template="/dlq/replay/{id}")[1]["status"] == "done",
        30,
        "the API's replay did not run",
    )
    final = expect(api, "GET", job, 200, "/dlq/replay/{id}")
    assert (final["matched"], final["failed"]) == (1, 1)  # the resolved and the ignored one are left alone
    expect(api, "GET", "/dlq/replay/999999999", 404, "/dlq/replay/{id}")

    # configuration: redacted, hot subset patched, the rest rejected by name
    refused(api, "GET", "/config")
    config = expect(api, "GET", "/config", 200)
    text = json.dumps(config)
    assert PG_PASSWORD not in text
    assert TOKEN not in text
    assert ":***@" in config["postgres"]["dsn"]
    assert config["web"]["token"] == "***"
    refused(api, "PATCH", "/config", body={"sink": {"batch_size": 500}})
    patched = expect(api, "PATCH", "/config", 200, body={"sink": {"batch_size": 500}, "log_level": "DEBUG"})
    assert patched["changed"] == {"sink.batch_size": 500, "log_level": "DEBUG"}
    assert expect(api, "GET", "/config", 200)["sink"]["batch_size"] == 500
    wrong = expect(api, "PATCH", "/config", 422, body={"kafka": {"bootstrap_servers": "elsewhere:9092"}})
    assert "kafka.bootstrap_servers" in wrong["error"]["message"]
    expect(api, "PATCH", "/config", 422, body={"sink": {"batch_size": -1}})
    expect(api, "PATCH", "/config", 400, body=[1])

    progress = expect(api, "GET", "/progress", 200)
    assert progress["partitions"][f"{topic}:0"]["next_offset"] == 5
    assert progress["tables"][f"{keyspace}.t"]["RowWrite"] == 2
    schemas = expect(api, "GET", f"/schemas/{keyspace}.t", 200, "/schemas/{name}")
    assert schemas["versions"][0]["version"] == 1
    expect(api, "GET", "/schemas/nodot", 400, "/schemas/{name}")
    expect(api, "GET", f"/schemas/{keyspace}.none", 404, "/schemas/{name}")
    # reconciliation: the mirror holds two rows Cassandra does not (they came as synthetic events)
    refused(api, "POST", "/reconciliation/trigger", body={})
    expect(api, "POST", "/reconciliation/trigger", 400, body={"strategy": "GUESS"})
    expect(api, "POST", "/reconciliation/trigger", 400, body={"tables": ["nodot"]})
    started = expect(
        api, "POST", "/reconciliation/trigger", 202, body={"tables": [f"{keyspace}.t"], "ranges": 4}
    )
    job_path = f"/reconciliation/jobs/{started['job_id']}"
    refused(api, "GET", job_path, "/reconciliation/jobs/{id}")
    wait_until(
        lambda: api("GET", job_path, template="/reconciliation/jobs/{id}")[1]["status"] != "running",
        60,
        "the triggered reconciliation did not finish",
    )
    job = expect(api, "GET", job_path, 200, "/reconciliation/jobs/{id}")
    assert (job["status"], job["mismatches"], job["owner"]) == ("done", 2, ""), job
    expect(api, "GET", "/reconciliation/jobs/999999999", 404, "/reconciliation/jobs/{id}")
    refused(api, "GET", "/reconciliation/jobs")
    listed = expect(
        api, "GET", f"/reconciliation/jobs?table={keyspace}.t&limit=1", 200, "/reconciliation/jobs"
    )
    assert [j["id"] for j in listed["jobs"]] == [started["job_id"]]
    refused(api, "GET", "/reconciliation/mismatches")
    found = expect(
        api,
        "GET",
        f"/reconciliation/mismatches?job_id={started['job_id']}",
        200,
        "/reconciliation/mismatches",
    )
    assert sorted(m["primary_key"] for m in found["mismatches"]) == [[0], [1]]
    assert {m["mismatch_type"] for m in found["mismatches"]} == {"MISSING_IN_CASSANDRA"}
    expect(api, "GET", "/reconciliation/mismatches?job_id=x", 400, "/reconciliation/mismatches")
    one = f"/reconciliation/mismatches/{found['mismatches'][0]['id']}/resolve"
    refused(api, "POST", one, "/reconciliation/mismatches/{id}/resolve", body={})
    closed = expect(
        api,
        "POST",
        one,
        200,
        "/reconciliation/mismatches/{id}/resolve",
        body={"status": "IGNORED", "note": "test rows"},
    )
    assert (closed["resolution_status"], closed["resolution_note"]) == ("IGNORED", "test rows")
    expect(api, "POST", one, 400, "/reconciliation/mismatches/{id}/resolve", body={"status": "GONE"})
    expect(
        api,
        "POST",
        "/reconciliation/mismatches/999999999/resolve",
        404,
        "/reconciliation/mismatches/{id}/resolve",
        body={},
    )
    status, metrics_text = api("GET", "/metrics")
    assert f'cdc_reconciliation_drift_percentage{{table="{keyspace}.t"}} 100.0' in metrics_text
    counters = expect(api, "GET", "/progress", 200)["reconciliation"][f"{keyspace}.t"]
    assert (counters["jobs"], counters["mismatches"], counters["rows_checked"]) == (1, 2, 0)
    assert job["alert_fired"] is True  # 100 % drift is above the warning threshold

    # backfill: rows only Cassandra holds (the table is not captured) reach the mirror
    for i in (10, 11, 12):
        cql.execute(f"INSERT INTO {keyspace}.t (id, name) VALUES ({i}, 'b{i}')")
    refused(api, "POST", "/backfill", body={"tables": [f"{keyspace}.t"]})
    expect(api, "POST", "/backfill", 400, body={"tables": []})
    expect(api, "POST", "/backfill", 400, body={"tables": [f"{keyspace}.t"], "parallel": 0})
    expect(api, "POST", "/backfill", 400, body={"tables": [f"{keyspace}.t"], "speed": 1})
    backfill = expect(api, "POST", "/backfill", 202, body={"tables": [f"{keyspace}.t"], "ranges": 4})
    backfill_path = f"/backfill/{backfill['job_id']}"
    refused(api, "GET", backfill_path, "/backfill/{id}")
    wait_until(
        lambda: api("GET", backfill_path, template="/backfill/{id}")[1]["status"] != "running",
        60,
        "the backfill did not finish",
    )
    filled = expect(api, "GET", backfill_path, 200, "/backfill/{id}")
    assert (filled["status"], filled["rows"], filled["errors"]) == ("done", 3, []), filled
    assert filled["progress"][0]["ranges_done"] == 4
    expect(api, "GET", "/backfill/999999999", 404, "/backfill/{id}")
    refused(api, "GET", "/backfill")
    assert [j["id"] for j in expect(api, "GET", f"/backfill?table={keyspace}.t", 200)["jobs"]] == [
        backfill["job_id"]
    ]
    with psycopg.connect(pg_dsn) as conn:
        names = conn.execute(f'SELECT name FROM "{keyspace}"."t" WHERE id >= 10 ORDER BY id').fetchall()
    assert [n for (n,) in names] == ["b10", "b11", "b12"]
    status, metrics_text = api("GET", "/metrics")
    assert f'cdc_backfill_rows_total{{table="{keyspace}.t"}} 3.0' in metrics_text

    status, openapi = api("GET", "/openapi.json")
    assert status == 200
    assert openapi["paths"].keys() == PATHS.keys()

    # the DLQ topic the worker created keeps dead letters 30 days
    assert topic_config(kafka_bootstrap, dlq_topic)["retention.ms"] == str(30 * 86_400_000)

    documented = {(m, p) for p, ops in PATHS.items() for m in ops}
    assert documented == api.called
    log = worker.log_text()
    assert TOKEN not in log
    assert PG_PASSWORD not in log


def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def describe() -> dict[str, str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            [(_, _, _, _, entries)] = response.resources
            return {e[0]: e[1] for e in entries}
        finally:
            await admin.close()

    return asyncio.run(describe())


def test_without_a_token_the_guarded_endpoints_are_off_and_the_open_ones_stay_open(
    cql: Any,
    keyspace: str,
    start_worker: Any,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    create_keyspace(cql, keyspace)
    _, api = start(start_worker, keyspace, pg_dsn)
    expect(api, "GET", "/health", 200)
    for method, path, template in (
        ("POST", "/reconciliation/trigger", "/reconciliation/trigger"),
        ("POST", "/backfill", "/backfill"),
        ("GET", "/config", "/config"),
        ("PATCH", "/config", "/config"),
        ("GET", "/dlq/records", "/dlq/records"),
        ("POST", "/dlq/replay", "/dlq/replay"),
        ("GET", "/dlq/records/1", "/dlq/records/{id}"),
    ):
        error = expect(
            api,
            method,
            path,
            403,
            template,
            token="any-token-any-token",
            body={} if method != "GET" else None,
        )
        assert error["error"]["code"] == "disabled"
        assert "CDC_WEB__TOKEN" in error["error"]["message"]

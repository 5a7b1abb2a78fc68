"""An alert of the project's rules firing end to end: a real Prometheus (the stack's, Debian's binary) scrapes
a real worker and evaluates ``helm/cass-cdc-pg/files/prometheus-rules.yml``.

CQL writes stream to the worker; PostgreSQL is stopped (``cdc stack`` stops the server) while they go on, so
events wait in Kafka and nothing commits: ``CdcNoCommitWhileLag`` goes pending, then firing, as Prometheus's
own ``/api/v1/alerts`` reports. PostgreSQL started again, the worker resumes, the sides converge and the alert
is resolved. On the way, every metric the rules (and dashboards) name is on the running worker's ``/metrics``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.testing import (
    CqlWriter,
    StartWorker,
    compare_keyspace,
    create_cdc_keyspace,
    wait_applied,
    wait_until,
)
from stack import control
from stack.config import Settings as StackSettings
from stack.services.prometheus import Prometheus, set_targets
from tests.unit.exported_metrics import metric_names, scraped
from tests.unit.test_alert_rules import EXTERNAL, rules
from tests.unit.test_dashboards import dashboards, expressions

pytestmark = [
    pytest.mark.integration,
    pytest.mark.services("postgres", "kafka", "cassandra", "debezium", "prometheus"),
]

TABLE = "events"
ALERT = "CdcNoCommitWhileLag"


def alerts(base: str, name: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{base}/api/v1/alerts", timeout=10).json()
    return [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == name]


def target_up(base: str, address: str) -> bool:
    body = httpx.get(f"{base}/api/v1/targets", timeout=10).json()
    return any(
        t["labels"].get("instance") == address and t["health"] == "up" for t in body["data"]["activeTargets"]
    )


def state(base: str, name: str) -> str:
    found = alerts(base, name)
    return found[0]["state"] if found else "inactive"


def test_stopping_postgresql_fires_the_no_commit_alert_in_a_real_prometheus(
    cql: Any,
    keyspace: str,
    start_worker: StartWorker,
    pg_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    agent_log: Path,
    topics: list[str],
    stack_settings: StackSettings,
) -> None:
    if os.environ.get("CDC_TEST_PG_DSN"):
        pytest.skip("stops the local stack's PostgreSQL; CDC_TEST_PG_DSN points elsewhere")
    base = Prometheus().url(stack_settings)
    topic = f"{topic_prefix}.{keyspace}.{TABLE}"
    topics.append(topic)
    create_cdc_keyspace(
        cql, keyspace, {TABLE: CqlWriter.DEFINITION}, topic_prefix, kafka_bootstrap, agent_log
    )
    worker = start_worker([keyspace], extra_env={"CDC_SINK__BATCH_SIZE": "50"})
    address = f"127.0.0.1:{worker.web_port}"
    writer = CqlWriter(cql, keyspace, TABLE)
    writer.start()
    set_targets(stack_settings, [address])
    try:
        wait_until(lambda: target_up(base, address), 90, f"Prometheus never scraped the worker at {address}")
        wait_until(lambda: writer.count > 50, 60, "the writer wrote nothing")
        wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic], timeout=120)

        # Every metric the rules and dashboards name is on the running worker's /metrics.
        exported = scraped(httpx.get(f"http://{address}/metrics", timeout=10).text)
        queries = [r["expr"] for r in rules().values()] + [
            e for d in dashboards().values() for e in expressions(d)
        ]
        named = {m for q in queries for m in metric_names(q)} - EXTERNAL
        assert named - exported == set(), "named by the rules or dashboards but not exported by the worker"
        assert state(base, ALERT) == "inactive"

        control.down(["postgres"], stack_settings, lambda line: None)
        stopped = time.monotonic()
        try:
            wait_until(lambda: state(base, ALERT) == "pending", 150, f"{ALERT} never went pending")
            pending_after = time.monotonic() - stopped
            wait_until(lambda: state(base, ALERT) == "firing", 120, f"{ALERT} never fired")
            firing_after = time.monotonic() - stopped
            [fired] = alerts(base, ALERT)
            assert fired["labels"]["instance"] == address, fired
            assert fired["labels"]["severity"] == "critical", fired
            assert fired["annotations"]["runbook_url"] == "docs/runbooks.md#cdcnocommitwhilelag", fired
            # Pending once 60 s passed without a commit; firing after its `for: 1m` (5 s scrape/evaluation).
            timings = (pending_after, firing_after)
            print(
                f"{ALERT} pending {pending_after:.0f} s and firing {firing_after:.0f} s after PostgreSQL stopped"
            )
            assert 55 < pending_after < firing_after, timings
            assert firing_after - pending_after >= 55, timings
        finally:
            control.up(["postgres"], stack_settings, lambda line: None)
        wait_until(lambda: state(base, ALERT) == "inactive", 120, f"{ALERT} stayed active after the restart")
    finally:
        writer.stopped.set()
        writer.join(10)
        set_targets(stack_settings, [stack_settings.prometheus_targets])

    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic], timeout=180)
    diffs = compare_keyspace(cql, pg_dsn, keyspace, [TABLE])
    assert all(d.equal for d in diffs), diffs

"""The project's Prometheus rules (``helm/cass-cdc-pg/files/prometheus-rules.yml``): ``promtool check rules``
and ``promtool test rules`` (``tests/monitoring/alerts.test.yml``), every alert both firing and silent there,
the plan's thresholds, a severity, a summary, a description and a runbook section for each, and only metrics
the worker exports (or a Kafka exporter's, named here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.exported_metrics import exported, metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm" / "cass-cdc-pg" / "files" / "prometheus-rules.yml"
RULE_TESTS = ROOT / "tests" / "monitoring" / "alerts.test.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
EXTERNAL = {"up", "kafka_topic_partition_under_replicated_partition"}
"""Metrics not from the worker: Prometheus's own ``up``, and a Kafka exporter's."""


def rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"]}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # `make install` installs it (Debian's prometheus package): in CI a failure, not a skip
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "promtool is not installed (Debian: prometheus; `make install` installs it)"
        )
    return found


def test_the_plans_alerts_are_there_with_their_thresholds() -> None:
    r = rules()
    assert r["CdcLatencyP95High"]["expr"].strip().endswith("> 2")
    assert r["CdcLatencyP95High"]["for"] == "5m"
    assert r["CdcConsumerLagHigh"]["expr"].endswith("> 10000")
    assert r["CdcConsumerLagSecondsHigh"]["expr"].strip().endswith("> 60")
    assert r["CdcBatchErrorRateHigh"]["expr"].strip().endswith("> 0.01")
    assert r["CdcDeadLetterRateHigh"]["expr"].strip().endswith("> 0.001")
    assert "< 5000" in r["CdcThroughputLow"]["expr"]
    assert r["CdcMemoryHigh"]["expr"].endswith("> 2.5e9")
    assert r["ReconciliationDriftWarning"]["expr"].endswith("> 1")
    assert r["ReconciliationDriftCritical"]["expr"].endswith("> 5")
    assert {
        "CdcWorkerDown",
        "KafkaUnderReplicatedPartitions",
        "CdcNoCommitWhileLag",
        "CdcFencedBatches",
    } <= set(r)
    assert {"CdcUncapturedTables", "CdcCircuitOpen", "ReconciliationJobFailed"} <= set(r)


def test_every_alert_has_a_severity_annotations_and_a_runbook_section() -> None:
    headings = set(re.findall(r"^## (\w+)$", RUNBOOKS.read_text(), flags=re.MULTILINE))
    for name, rule in rules().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{name.lower()}", name
        assert name in headings, f"docs/runbooks.md has no section for {name}"


def test_every_metric_the_rules_name_is_exported() -> None:
    known = exported() | EXTERNAL
    for name, rule in rules().items():
        for metric in metric_names(rule["expr"]):
            assert metric in known, (name, metric)


def test_the_metric_name_parser_finds_selected_metrics_only() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(cdc_x_bucket{job="a"}[5m]))) > 2 '
        "and on (instance) (sum by (instance) (cdc_y) > 0) and 2.5e9 > up"
    )
    assert metric_names(expr) == {"cdc_x_bucket", "cdc_y", "up"}


def test_promtool_accepts_the_rules_file() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_make_every_alert_fire_and_stay_silent() -> None:
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert set(rules()) - firing == set(), "alerts never made to fire"
    assert set(rules()) - silent == set(), "alerts never shown silent"
    done = subprocess.run(
        [promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr

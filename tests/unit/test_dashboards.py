"""The Grafana dashboards (``helm/cass-cdc-pg/files/dashboards/*.json``, provisioned by compose and shipped
by the chart): every PromQL expression parses (``promtool check rules`` on them as recording rules, Grafana's
variables given values), names only metrics the worker exports, and every panel has a place and a datasource
variable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.exported_metrics import exported, metric_names

DASHBOARDS = Path(__file__).resolve().parents[2] / "helm" / "cass-cdc-pg" / "files" / "dashboards"
VARIABLES = {"$__rate_interval": "5m", "$job": "cass-cdc-pg", "$instance": ".*"}
"""What Grafana puts in place of its variables, for parsing."""
EXTERNAL = {"up"}


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every panel query, with Grafana's variables replaced."""
    found = []
    for panel in panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            found.append(expr)
    return found


def test_the_pipeline_dashboard_shows_what_the_plan_asks_for() -> None:
    titles = " | ".join(p["title"] for p in panels(dashboards()["pipeline.json"])).lower()
    for topic in (
        "events applied",
        "latency",
        "waiting",
        "stage",
        "dead letters",
        "retries",
        "memory",
        "cpu",
    ):
        assert topic in titles, topic
    assert "reconciliation" in titles


def test_every_expression_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("promtool is not installed (`make install`)")
    for name, dashboard in dashboards().items():
        rules = [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(expressions(dashboard))]
        path = tmp_path / f"{name}.rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}))
        done = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert not any("$" in e for e in expressions(dashboard)), "a Grafana variable without a value here"


def test_every_metric_the_dashboards_name_is_exported() -> None:
    known = exported() | EXTERNAL
    for name, dashboard in dashboards().items():
        for expr in expressions(dashboard):
            assert metric_names(expr) - known == set(), (name, expr)


def test_every_panel_has_a_unique_id_a_place_and_the_datasource_variable() -> None:
    for name, dashboard in dashboards().items():
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        assert {v["name"] for v in dashboard["templating"]["list"]} >= {"datasource", "job", "instance"}
        for panel in panels(dashboard):
            assert set(panel["gridPos"]) == {"x", "y", "w", "h"}, (name, panel["title"])
            assert panel["datasource"]["uid"] == "${datasource}", (name, panel["title"])

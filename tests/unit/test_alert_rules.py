"""The project's Prometheus rules file: the reconciliation alerts of the plan, their thresholds, and only
metrics the worker exports (``promtool check rules`` too, when promtool is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import app.metrics  # noqa: F401  (registers the pipeline's metrics)

RULES = Path(__file__).resolve().parents[2] / "helm" / "cass-cdc-pg" / "files" / "prometheus-rules.yml"


def exported() -> set[str]:
    names: set[str] = set()
    for metric in REGISTRY.collect():
        names.update(sample.name for sample in metric.samples)
        names.add(metric.name)
        if metric.type == "counter":
            names.add(f"{metric.name}_total")  # a labelled counter has no sample before its first increment
    return names


def test_the_reconciliation_alerts_use_the_plans_thresholds_and_exported_metrics() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert set(rules) == {
        "ReconciliationDriftWarning",
        "ReconciliationDriftCritical",
        "ReconciliationJobFailed",
    }
    assert rules["ReconciliationDriftWarning"]["expr"].endswith("> 1")
    assert rules["ReconciliationDriftCritical"]["expr"].endswith("> 5")
    assert rules["ReconciliationDriftCritical"]["labels"]["severity"] == "critical"
    known = exported()
    for rule in rules.values():
        for name in re.findall(r"\bcdc_[a-z_]+", rule["expr"]):
            assert name in known, (rule["alert"], name)


def test_promtool_accepts_the_rules_file() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        import pytest

        pytest.skip("promtool is not installed (Debian: prometheus)")
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr

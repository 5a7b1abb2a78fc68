"""The deployment files, checked without a cluster or a Docker engine: ``docker/compose.yaml`` against the
Compose specification's JSON schema (the one check-jsonschema vendors), and the Helm chart with ``helm lint``,
``helm template`` (example, production and everything-on values) and every rendered manifest validated
against the Kubernetes API schemas (kubernetes-validate, strict) of the oldest and newest versions we
support; the PrometheusRule's rules go through ``promtool check rules``.

helm is built from the Go module proxy by ``make install`` (``.tools/bin/helm``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "cass-cdc-pg"
COMPOSE = ROOT / "docker" / "compose.yaml"
KUBE_VERSIONS = ("1.29.0", "1.34.0")
"""The oldest Kubernetes release still maintained by the big providers, and a recent one."""
EXAMPLE = CHART / "ci" / "test-values.yaml"
VALUE_SETS: dict[str, list[str]] = {
    "example": ["-f", str(EXAMPLE)],
    "prod": ["-f", str(EXAMPLE), "-f", str(CHART / "values-prod.yaml")],
    "everything": [
        "-f",
        str(EXAMPLE),
        "--set",
        "prometheusRule.enabled=true,networkPolicy.enabled=true,podDisruptionBudget.enabled=true",
        "--set",
        "prometheusRule.runbookBaseUrl=https://git.example/cass-cdc-pg/blob/main/docs/runbooks.md",
    ],
}


def tool(name: str, hint: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(ROOT / ".tools" / "bin"))
    if found is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{name} is not installed ({hint})")
    return str(found)


def helm(*args: str) -> str:
    done = subprocess.run(
        [tool("helm", "`make install` builds it from the Go module proxy"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rendered(values: str, kube_version: str) -> list[dict[str, Any]]:
    text = helm("template", "cdc", str(CHART), "--kube-version", kube_version, *VALUE_SETS[values])
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_compose_file_follows_the_compose_specification() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["postgres"]["depends_on"] = {"kafka": {"condition": "whenever"}}
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_helm_lint_passes(values: str) -> None:
    out = helm("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSIONS[0], *VALUE_SETS[values])
    assert "0 chart(s) failed" in out, out


def test_the_chart_refuses_to_render_without_its_required_values() -> None:
    done = subprocess.run(
        [tool("helm", "make install"), "template", "cdc", str(CHART), "--kube-version", KUBE_VERSIONS[0]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "config.kafka.bootstrapServers is required" in done.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_every_rendered_manifest_is_valid_for_kubernetes(
    values: str, kube_version: str, tmp_path: Path
) -> None:
    docs = rendered(values, kube_version)
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Service", "ConfigMap", "ServiceAccount"} <= kinds, kinds
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            check_operator_resource(doc, tmp_path)
            continue
        kubernetes_validate.validate(doc, kube_version, strict=True)


def check_operator_resource(doc: dict[str, Any], tmp_path: Path) -> None:
    """The Prometheus Operator's kinds (no schema in Kubernetes itself): the rules must pass promtool, the
    ServiceMonitor must scrape /metrics on the http port with job="cass-cdc-pg"."""
    if doc["kind"] == "PrometheusRule":
        path = tmp_path / "rules.yml"
        path.write_text(yaml.safe_dump(doc["spec"]))
        promtool = tool("promtool", "Debian's prometheus package; `make install` installs it")
        done = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return
    assert doc["kind"] == "ServiceMonitor", doc["kind"]
    [endpoint] = doc["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert {"targetLabel": "job", "replacement": "cass-cdc-pg"} in endpoint["relabelings"]


def test_kubernetes_validation_rejects_an_unknown_field() -> None:
    [statefulset] = [d for d in rendered("example", KUBE_VERSIONS[0]) if d["kind"] == "StatefulSet"]
    statefulset["spec"]["template"]["spec"]["containers"][0]["rediness"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBE_VERSIONS[0], strict=True)


def test_the_runbook_base_url_replaces_the_path_in_the_prometheus_rule() -> None:
    [rule] = [d for d in rendered("everything", KUBE_VERSIONS[0]) if d["kind"] == "PrometheusRule"]
    urls = {r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "https://git.example/cass-cdc-pg/blob/main/docs/runbooks.md#cdcnocommitwhilelag" in urls
    assert all(u.startswith("https://git.example/") for u in urls), urls

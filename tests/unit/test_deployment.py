"""The deployment files, checked without a cluster or a Docker engine: ``docker/compose.yaml`` against the
Compose specification's JSON schema (the one check-jsonschema vendors), and the Helm chart with ``helm lint``,
``helm template`` (example, production and everything-on values) and every rendered manifest validated
against the Kubernetes API schemas (kubernetes-validate, strict) of the oldest and newest versions we
support; the PrometheusRule's rules go through ``promtool check rules``.

helm is built from the Go module proxy by ``make install`` (``.tools/bin/helm``)."""

from __future__ import annotations

import json
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
        "prometheusRule.enabled=true,networkPolicy.enabled=true,podDisruptionBudget.enabled=true,grafanaDashboards.enabled=true",
        "--set",
        "prometheusRule.runbookBaseUrl=https://git.example/cass-cdc-pg/blob/main/docs/runbooks.md",
        "--set",
        "tracing.enabled=true,tracing.otlpEndpoint=http://otel-collector:4318",
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


def test_compose_runs_the_plans_services_each_healthchecked_on_loopback_with_its_files() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {
        "cassandra", "debezium", "kafka", "registry", "postgres", "openbao", "prometheus", "alertmanager",
        "grafana", "jaeger", "worker",
    } <= set(services)  # fmt: skip
    for name, service in services.items():
        assert "healthcheck" in service or name in {"debezium", "worker"}, name  # images with a HEALTHCHECK
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        for condition in service.get("depends_on", {}).values():
            assert condition["condition"] in {"service_healthy", "service_started"}, name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), (name, source)
    assert (COMPOSE.parent / ".env.example").is_file()


def test_composes_prometheus_config_is_valid_and_scrapes_the_workers_job() -> None:
    config = COMPOSE.parent / "monitoring" / "prometheus.yml"
    [job] = [
        j for j in yaml.safe_load(config.read_text())["scrape_configs"] if j["job_name"] == "cass-cdc-pg"
    ]
    assert job["static_configs"][0]["targets"] == ["worker:6066"]
    promtool = tool("promtool", "Debian's prometheus package; `make install` installs it")
    done = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


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


def test_the_dashboards_configmap_carries_every_dashboard_intact() -> None:
    [configmap] = [
        d for d in rendered("prod", KUBE_VERSIONS[0]) if d["metadata"]["name"].endswith("-dashboards")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = {name: json.loads(text) for name, text in configmap["data"].items()}
    files = {
        f"cass-cdc-pg-{p.name}": json.loads(p.read_text())
        for p in (CHART / "files" / "dashboards").glob("*.json")
    }
    assert shipped == files


def test_tracing_values_become_the_workers_settings() -> None:
    docs = rendered("everything", KUBE_VERSIONS[0])
    [configmap] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "cdc-cass-cdc-pg"]
    data = configmap["data"]
    assert (data["CDC_TRACING__ENABLED"], data["CDC_TRACING__SUCCESS_RATIO"]) == ("true", "0.1")
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"


def test_the_runbook_base_url_replaces_the_path_in_the_prometheus_rule() -> None:
    [rule] = [d for d in rendered("everything", KUBE_VERSIONS[0]) if d["kind"] == "PrometheusRule"]
    urls = {r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "https://git.example/cass-cdc-pg/blob/main/docs/runbooks.md#cdcnocommitwhilelag" in urls
    assert all(u.startswith("https://git.example/") for u in urls), urls


def docker_engine() -> str | None:
    """Why Docker cannot build here, or None when an engine answers."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client on PATH"
    done = subprocess.run([docker, "info"], capture_output=True, text=True, check=False, timeout=30)
    return (
        None
        if done.returncode == 0
        else f"no Docker engine answers `docker info`: {done.stderr.strip()[:200]}"
    )


def test_the_worker_image_builds_and_runs_cdc() -> None:
    reason = docker_engine()
    if reason is not None:
        pytest.skip(f"docker build not run: {reason}")
    tag = "cass-cdc-pg:test-build"
    build = subprocess.run(
        ["docker", "build", "-f", "docker/Dockerfile", "-t", tag, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run(
        ["docker", "run", "--rm", tag, "--version"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "cass-cdc-pg" in run.stdout

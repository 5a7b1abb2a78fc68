"""Prometheus (optional, Debian's ``prometheus`` package): scrapes the workers and evaluates the project's
alert rules (``helm/cass-cdc-pg/files/prometheus-rules.yml``), on 127.0.0.1 only.

The workers it scrapes are listed in a file-based service discovery file (``conf/prometheus/targets.json``),
which Prometheus re-reads on change: :func:`set_targets` points it at other workers while it runs. The job is
``cass-cdc-pg``, the one the rules select.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from stack import readiness
from stack.config import REPO_ROOT, Settings
from stack.errors import StackError
from stack.process import Launch
from stack.services.base import Service, write

RULES = REPO_ROOT / "helm" / "cass-cdc-pg" / "files" / "prometheus-rules.yml"
JOB = "cass-cdc-pg"


def render_config(s: Settings, targets_file: Path, rules: Path = RULES) -> str:
    """prometheus.yml: one job scraping the workers listed in ``targets_file``, the project's rules."""
    config = {
        "global": {"scrape_interval": s.prometheus_interval, "evaluation_interval": s.prometheus_interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "scrape_timeout": s.prometheus_interval,
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
            }
        ],
    }
    return json.dumps(config, indent=2) + "\n"  # JSON is YAML


def targets_file(s: Settings) -> Path:
    return s.conf_dir("prometheus") / "targets.json"


def set_targets(s: Settings, targets: list[str]) -> None:
    """Scrape these workers (``host:port``); Prometheus picks the change up within seconds. The file is
    replaced atomically (a half-written file would drop every target)."""
    path = targets_file(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps([{"targets": targets, "labels": {}}]) + "\n")
    partial.replace(path)


class Prometheus(Service):
    name = "prometheus"
    optional = True

    def ports(self, s: Settings) -> list[int]:
        return [s.prometheus_port]

    def resolve(self, s: Settings) -> None:
        self.binary(s)

    def binary(self, s: Settings) -> str:
        found = shutil.which(s.prometheus)
        if found is None:
            raise StackError(
                f"prometheus not found ({s.prometheus!r}): `make install` installs Debian's prometheus package "
                "(or set CDC_STACK_PROMETHEUS)"
            )
        return found

    def prepare(self, s: Settings) -> Launch:
        data = self.data_dir(s)
        data.mkdir(parents=True, exist_ok=True)
        if not targets_file(s).exists():
            set_targets(s, [t.strip() for t in s.prometheus_targets.split(",") if t.strip()])
        config = write(self.conf_dir(s) / "prometheus.yml", render_config(s, targets_file(s)))
        argv = [
            self.binary(s),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={s.host}:{s.prometheus_port}",
        ]
        return Launch(argv=argv, cwd=data)

    def url(self, s: Settings) -> str:
        return f"http://{s.host}:{s.prometheus_port}"

    def probe(self, s: Settings) -> bool:
        return readiness.http_ok(f"{self.url(s)}/-/ready")

    def endpoint(self, s: Settings) -> dict[str, object]:
        return {"url": self.url(s), "targets_file": str(targets_file(s)), "rules": str(RULES)}

"""The stack's Prometheus: its configuration (the workers' job, the project's rules, 127.0.0.1 only) and the
targets file it re-reads."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stack.config import Settings
from stack.services import SERVICES
from stack.services.prometheus import JOB, RULES, render_config, set_targets, targets_file


def test_the_config_scrapes_the_workers_job_and_loads_the_projects_rules(tmp_path: Path) -> None:
    s = Settings(dir=tmp_path, prometheus_interval="2s")
    config = yaml.safe_load(render_config(s, targets_file(s)))
    assert config["rule_files"] == [str(RULES)]
    assert config["global"] == {"scrape_interval": "2s", "evaluation_interval": "2s"}
    [job] = config["scrape_configs"]
    assert job["job_name"] == JOB == "cass-cdc-pg"  # what the rules select
    assert job["file_sd_configs"][0]["files"] == [str(targets_file(s))]


def test_set_targets_replaces_the_file_prometheus_reads(tmp_path: Path) -> None:
    s = Settings(dir=tmp_path)
    set_targets(s, ["127.0.0.1:7001"])
    set_targets(s, ["127.0.0.1:7002", "127.0.0.1:7003"])
    assert json.loads(targets_file(s).read_text()) == [
        {"targets": ["127.0.0.1:7002", "127.0.0.1:7003"], "labels": {}}
    ]
    assert not list(targets_file(s).parent.glob("*.tmp"))


def test_prepare_listens_on_the_stack_host_and_writes_default_targets(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian: prometheus; `make install` installs it)")
    s = Settings(dir=tmp_path, prometheus_port=59999, prometheus_targets="127.0.0.1:6066, 127.0.0.1:6067")
    launch = SERVICES["prometheus"].prepare(s)
    assert "--web.listen-address=127.0.0.1:59999" in launch.argv
    assert json.loads(targets_file(s).read_text())[0]["targets"] == ["127.0.0.1:6066", "127.0.0.1:6067"]
    config = next(a.split("=", 1)[1] for a in launch.argv if a.startswith("--config.file="))
    promtool = shutil.which("promtool")
    assert promtool is not None
    done = subprocess.run([promtool, "check", "config", config], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

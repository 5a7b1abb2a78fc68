"""Shared by the benchmarks: machine facts, percentiles, result files, and starting/stopping stack services."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from stack import control, process
from stack.config import Settings
from stack.services import SERVICES

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("aiokafka", "cassandra-driver", "psycopg")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5 - 1e-9)))
    return float(ordered[rank - 1])


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 2),
        "p95": round(percentile(values, 95), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _java_version(s: Settings) -> str | None:
    try:
        out = subprocess.run([s.java, "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stderr or out.stdout).splitlines()
    return lines[0].strip() if lines else None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info(s: Settings | None = None) -> dict[str, Any]:
    s = s or Settings.from_env()
    versions: dict[str, str | None] = {"python": platform.python_version(), "java": _java_version(s)}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    versions.update(
        {
            "kafka": "3.9.2 (kafka_2.13)",
            "cassandra": "5.0.2",
            "debezium_cassandra": "3.4.1.Final",
            "postgres": "15",
        }
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "versions": versions,
    }


def write_results(name: str, result: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def header(result: dict[str, Any]) -> list[str]:
    """The common first lines of a markdown summary: date, machine, versions, parameters."""
    m = result["machine"]
    v = ", ".join(f"{k} {val}" for k, val in m["versions"].items() if val)
    params = ", ".join(f"{k}={val}" for k, val in result["parameters"].items())
    return [
        f"# {result['benchmark']}",
        "",
        f"- date: {result['date']}",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, {m['platform']}",
        f"- versions: {v}",
        f"- parameters: {params}",
        "",
    ]


def quiet_logging() -> None:
    """Warnings and up; aiokafka's "topic not found" (logged as ERROR while a topic is being created) and the
    driver's chatter left out."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("cassandra").setLevel(logging.ERROR)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def echo(line: str) -> None:
    print(f"  [stack] {line}", file=sys.stderr, flush=True)


class Services:
    """Start the named services (+ deps) via the stack package, reusing running ones; stop only what it started."""

    def __init__(self, names: Iterable[str], s: Settings | None = None) -> None:
        self.s = s or Settings.from_env()
        self.names = [svc.name for svc in control.with_deps(names, self.s)]
        self.started: list[str] = []

    def __enter__(self) -> Services:
        before = {n for n in self.names if control.pid_of(SERVICES[n], self.s) is not None}
        try:
            control.up(self.names, self.s, echo)
        except BaseException:
            self.started = self._new(before)
            self.__exit__()
            raise
        self.started = self._new(before)
        return self

    def _new(self, before: set[str]) -> list[str]:
        return [n for n in self.names if n not in before and control.pid_of(SERVICES[n], self.s) is not None]

    def __exit__(self, *exc: object) -> None:
        chosen = set(self.started)
        for svc in control.with_dependents(chosen, self.s) if chosen else []:
            pid = control.pid_of(svc, self.s)
            if svc.name in chosen and pid is not None:
                echo(f"{svc.name}: stopping (pid {pid}), started by the benchmark")
                process.stop(pid, svc.stop_signal, self.s.stop_timeout)
                self.s.pid_file(svc.name).unlink(missing_ok=True)

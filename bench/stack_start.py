"""Warm ``cdc stack up`` time (everything already running) and the Debezium agent's restart time.

Each run is a fresh ``python -m stack ...`` process (what ``cdc stack`` runs), timed wall-clock from spawn to
exit, so interpreter start-up and every readiness probe are included. No cold start: ``.stack`` is never wiped.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

from bench.common import Services, header, machine_info, now_iso
from stack.config import REPO_ROOT, Settings
from stack.errors import StackError
from stack.services import DEFAULT_UP

WARM_RUNS = 5
RESTART_RUNS = 3
TARGET_WARM_UP_S = 90.0


def cli(*args: str) -> float:
    """Run ``python -m stack <args>``; returns its wall-clock seconds (raises StackError on failure)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "stack", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise StackError(
            f"`stack {' '.join(args)}` failed (exit {proc.returncode})", proc.stderr.splitlines()[-20:]
        )
    return took


def stats(values: list[float]) -> dict[str, Any]:
    return {
        "runs_s": [round(v, 2) for v in values],
        "median_s": round(statistics.median(values), 2),
        "min_s": round(min(values), 2),
        "max_s": round(max(values), 2),
    }


def run(warm_runs: int = WARM_RUNS, restart_runs: int = RESTART_RUNS) -> dict[str, Any]:
    s = Settings.from_env()
    with Services(DEFAULT_UP, s):  # make sure everything is up first (reuses what runs)
        warm = []
        for i in range(warm_runs):
            warm.append(cli("up"))
            print(f"  warm up #{i + 1}: {warm[-1]:.2f}s", flush=True)
        downs, ups = [], []
        try:
            for i in range(restart_runs):
                downs.append(cli("down", "debezium"))
                ups.append(cli("up", "debezium"))
                print(f"  agent restart #{i + 1}: down {downs[-1]:.2f}s, up {ups[-1]:.2f}s", flush=True)
        finally:
            cli("up")  # never leave the agent down
    restart = [d + u for d, u in zip(downs, ups, strict=True)]
    warm_stats = stats(warm)
    return {
        "benchmark": "stack_start",
        "date": now_iso(),
        "machine": machine_info(s),
        "parameters": {
            "warm_runs": warm_runs,
            "restart_runs": restart_runs,
            "command": f"{sys.executable} -m stack (same as `cdc stack`)",
            "services": list(DEFAULT_UP),
        },
        "warm_up": warm_stats,
        "agent_down": stats(downs),
        "agent_up": stats(ups),
        "agent_restart": stats(restart),
        "target": {
            "warm_up_s": TARGET_WARM_UP_S,
            "measured_median_s": warm_stats["median_s"],
            "met": warm_stats["median_s"] <= TARGET_WARM_UP_S,
        },
    }


def markdown(result: dict[str, Any]) -> str:
    lines = header(result)
    lines += ["| measurement | median s | min s | max s | runs s |", "|---|---|---|---|---|"]
    for key, label in (
        ("warm_up", "warm `stack up` (all running)"),
        ("agent_down", "`stack down debezium`"),
        ("agent_up", "`stack up debezium`"),
        ("agent_restart", "agent restart (down + up)"),
    ):
        st = result[key]
        runs = ", ".join(str(v) for v in st["runs_s"])
        lines.append(f"| {label} | {st['median_s']} | {st['min_s']} | {st['max_s']} | {runs} |")
    t = result["target"]
    verdict = "met" if t["met"] else "NOT met"
    lines += [
        "",
        f"Target warm `cdc stack up` <= {t['warm_up_s']:.0f} s: {verdict} (median {t['measured_median_s']} s).",
    ]
    return "\n".join(lines)

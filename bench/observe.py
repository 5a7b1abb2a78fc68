"""Watching a running worker from outside: committed offsets, memory, CPU, and its /metrics."""

from __future__ import annotations

import bisect
import os
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg

POLL_S = 0.02
RSS_POLL_S = 0.2


class CheckpointPoller(threading.Thread):
    """Every ``POLL_S``: the worker's ``_cdc_checkpoints.next_offset`` per partition, with the time seen.

    Per topic it keeps the history of the committed total (the sum over partitions; a partition's ``-1``,
    claimed but never committed, counts 0). For a one-partition topic, an offset ``o`` was committed after the
    last poll showing ``next_offset <= o`` and before the first one showing ``next_offset > o``:
    :meth:`commit_time` returns the latter (an upper bound, at most one poll interval plus one query late).
    """

    def __init__(self, dsn: str, group_id: str) -> None:
        super().__init__(daemon=True, name="checkpoint-poller")
        self.dsn, self.group_id = dsn, group_id
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.seen: dict[str, tuple[list[int], list[float]]] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                query = "SELECT topic, next_offset FROM _cdc_checkpoints WHERE group_id = %s"
                while not self.stopping.is_set():
                    try:
                        rows = conn.execute(query, (self.group_id,)).fetchall()
                    except psycopg.errors.UndefinedTable:
                        rows = []
                    self._record(rows, time.time())
                    self.stopping.wait(POLL_S)
        except BaseException as exc:
            self.error = exc

    def _record(self, rows: Iterable[tuple[str, int]], seen_at: float) -> None:
        totals: dict[str, int] = {}
        for topic, offset in rows:
            totals[topic] = totals.get(topic, 0) + max(0, int(offset))
        with self.lock:
            for topic, total in totals.items():
                offsets, times = self.seen.setdefault(topic, ([], []))
                if total > 0 and (not offsets or total > offsets[-1]):
                    offsets.append(total)
                    times.append(seen_at)

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)

    def history(self, topic: str) -> tuple[list[int], list[float]]:
        with self.lock:
            offsets, times = self.seen.get(topic, ([], []))
            return list(offsets), list(times)

    def committed(self, topic: str) -> int:
        offsets, _ = self.history(topic)
        return offsets[-1] if offsets else -1

    def commit_time(self, topic: str, offset: int) -> float | None:
        offsets, times = self.history(topic)
        i = bisect.bisect_right(offsets, offset)
        return times[i] if i < len(offsets) else None

    def wait_for(self, topic: str, next_offset: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError(f"checkpoint poller failed: {self.error!r}")
            if self.committed(topic) >= next_offset:
                return True
            time.sleep(POLL_S)
        return False


def status_kib(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class MemorySampler(threading.Thread):
    """VmRSS of a pid every ``RSS_POLL_S``; VmHWM (the peak) when asked."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name=f"rss-{pid}")
        self.pid = pid
        self.stopping = threading.Event()
        self.samples: list[float] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            rss = status_kib(self.pid, "VmRSS")
            if rss:
                self.samples.append(rss / 1024)
            self.stopping.wait(RSS_POLL_S)

    def finish(self) -> dict[str, Any]:
        """Call while the process is still alive."""
        hwm = status_kib(self.pid, "VmHWM")
        self.stopping.set()
        self.join(5)
        return {
            "peak_rss_mb": round(hwm / 1024, 1) if hwm else None,
            "max_sampled_rss_mb": round(max(self.samples), 1) if self.samples else None,
        }


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of ``pids`` so far (processes that are gone count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def postgres_pids() -> list[int]:
    """Every postgres server process (the backends serving the worker among them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return text


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts ``le -> count`` of a Prometheus histogram (all label sets added)."""
    buckets: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, _, count = line.rpartition(" ")
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(count)
    return buckets


def labelled_sums(text: str, name: str, label: str) -> dict[str, float]:
    """``<name>_sum`` per value of ``label`` (e.g. seconds per stage)."""
    sums: dict[str, float] = {}
    prefix = f"{name}_sum{{"
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, _, value = line.rpartition(" ")
            key = labels.split(f'{label}="', 1)[1].split('"', 1)[0]
            sums[key] = float(value)
    return sums


def histogram_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """p50/p95/p99 as the upper bound (ms) of the bucket that holds them, from bucket-count deltas."""
    bounds = sorted(after)
    delta = [after[b] - before.get(b, 0.0) for b in bounds]
    total = delta[-1] if delta else 0
    out: dict[str, Any] = {"n": int(total)}
    for q in (50, 95, 99):
        hit = next((b for b, c in zip(bounds, delta, strict=True) if total and c >= q / 100 * total), None)
        out[f"p{q}_le_ms"] = None if hit is None else ("+Inf" if hit == float("inf") else round(hit * 1000))
    return out

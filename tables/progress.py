"""RocksDB-backed Faust tables: per-partition progress and per-table counters.

A fast local view of what committed batches did; PostgreSQL (``_cdc_checkpoints``, the mirrors) is the
truth. Both tables have one partition. Faust's RocksDB store picks the partition of every write from the
*current event*, which does not exist when a whole committed batch is recorded at once, so :func:`update`
supplies a local event on partition 0 of the table's own changelog (``use_partitioner=True`` does not help:
the RocksDB store asserts a current event regardless).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from faust import streams

from app.faust_app import app
from models.batch import Outcome, progress_updates

ROCKSDB_OPTIONS: dict[str, Any] = {
    "block_cache_size": 16 * 1024 * 1024,
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
}


def _local_table(name: str, help_text: str) -> Any:
    """A one-partition RocksDB table of dicts with a small cache (Faust's default is 2 GiB per partition)."""
    return app.Table(name, default=dict, partitions=1, options=ROCKSDB_OPTIONS, help=help_text)


progress: Any = _local_table("progress", "topic:partition -> {next_offset, last_ts_us}")
table_counters: Any = _local_table("table-counters", "keyspace.table -> {applied events by mutation kind}")
reconciliation_counters: Any = _local_table(
    "reconciliation-counters", "keyspace.table -> {rows_checked, mismatches, jobs, last_run}"
)


@dataclass
class _Message:
    topic: str
    partition: int = 0


@dataclass
class _LocalEvent:
    message: _Message


@contextmanager
def _on_partition0(table: Any) -> Iterator[None]:
    event = _LocalEvent(_Message(table.changelog_topic.get_topic_name()))
    token = streams._current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        yield
    finally:
        streams._current_event.reset(token)


def update(table: Any, key: str, last: dict[str, int], counts: dict[str, int]) -> None:
    """Merge ``last`` (overwrite) and ``counts`` (add) into ``table[key]``."""
    with _on_partition0(table):
        current = dict(table[key])
        current.update(last)
        for name, n in counts.items():
            current[name] = int(current.get(name, 0)) + n
        table[key] = current


def record(outcome: Outcome) -> None:
    """Mirror a committed batch's progress and counters into the tables."""
    partitions, tables = progress_updates(outcome)
    for key, last, counts in partitions:
        update(progress, key, last, counts)
    for key, last, counts in tables:
        update(table_counters, key, last, counts)


def record_reconciliation(summary: dict[str, Any]) -> None:
    """Add a reconciled table's result (``app.reconcile.store.summary``) to its counters."""
    update(
        reconciliation_counters,
        summary["table"],
        {"last_run": int(time.time()), "last_drift_ppm": int(summary["drift_percentage"] * 10_000)},
        {"rows_checked": int(summary["cassandra_rows"]), "mismatches": int(summary["mismatches"]), "jobs": 1},
    )

"""The end-to-end harness lives in :mod:`app.harness` (shared with ``cdc demo`` and the benchmarks)."""

from app.harness import (
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    end_offsets,
    free_port,
    unique,
    wait_applied,
    wait_captured,
)

__all__ = [
    "WorkerProcess",
    "compare_keyspace",
    "create_cdc_keyspace",
    "end_offsets",
    "free_port",
    "unique",
    "wait_applied",
    "wait_captured",
]

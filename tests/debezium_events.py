"""Building Debezium Cassandra events (agent 3.4.1.Final, JSON converter shape) for tests."""

from __future__ import annotations

from typing import Any

SAMPLE_TS_US = 1795686247803209


def source(
    keyspace: str = "demo", table: str = "items", ts_us: int = SAMPLE_TS_US, **extra: Any
) -> dict[str, Any]:
    """The ``source`` block exactly as the agent writes it."""
    return {
        "version": "3.4.1.Final",
        "connector": "cassandra",
        "name": "cdc",
        "ts_ms": ts_us // 1000,
        "snapshot": "false",
        "db": "NULL",
        "sequence": None,
        "ts_us": ts_us,
        "ts_ns": ts_us * 1000,
        "cluster": "cdc-local",
        "file": "CommitLog-7-1795686226414.log",
        "pos": 48575,
        "keyspace": keyspace,
        "table": table,
        **extra,
    }


def cell(value: Any, deletion_ts: int | None = None) -> dict[str, Any]:
    """One touched column in ``after``."""
    return {"value": value, "deletion_ts": deletion_ts, "set": True}

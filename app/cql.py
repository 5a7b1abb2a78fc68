"""CQL identifiers and statements built from metadata: every name goes through the driver's ``protect_name``
(quoted when it needs it, embedded ``"`` doubled), so a column or table name cannot inject CQL."""

from __future__ import annotations

from collections.abc import Iterable

from cassandra.metadata import protect_name


def table_name(keyspace: str, table: str) -> str:
    return f"{protect_name(keyspace)}.{protect_name(table)}"


def names(columns: Iterable[str]) -> str:
    return ", ".join(protect_name(c) for c in columns)


def key_condition(columns: Iterable[str]) -> str:
    """``a = ? AND b = ?`` for a prepared statement."""
    return " AND ".join(f"{protect_name(c)} = ?" for c in columns)

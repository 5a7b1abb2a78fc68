"""Capture coverage: every Cassandra table with ``cdc = true`` in the replicated keyspaces should have its
change topic. The Debezium agent (3.4.1) silently misses a table created in the same schema refresh as its
keyspace, and stops capturing a table that is dropped and created again, until it restarts; without this
check such a table simply never replicates and nobody is told.

A table counts as *not captured* once it has had CDC on for ``grace_s`` (as first seen by this worker)
and its topic still does not exist. A table nobody has written to since it was created has no topic either:
the report names both causes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TablePath = tuple[str, str]

KNOWN_CAUSES = (
    "no write since CDC was enabled, or the Debezium agent did not register the table (it misses tables "
    "created in the same schema refresh as their keyspace, and tables dropped and created again): restart "
    "the agent (`cdc stack restart debezium` locally)"
)


def cdc_tables(cluster: Any, keyspaces: Iterable[str] | None) -> list[TablePath]:
    """Tables with ``cdc = true`` in ``keyspaces`` (None or empty: every non-system keyspace), from the
    driver's metadata."""
    wanted = set(keyspaces or ())
    found: list[TablePath] = []
    for ks_name, ks in cluster.metadata.keyspaces.items():
        if ks_name.startswith("system") or (wanted and ks_name not in wanted):
            continue
        found.extend((ks_name, t) for t, meta in ks.tables.items() if meta.options.get("cdc"))
    return sorted(found)


def uncaptured(
    tables: Iterable[TablePath],
    topics: Iterable[str],
    prefix: str,
    first_seen: dict[TablePath, float],
    now: float,
    grace_s: float,
) -> list[TablePath]:
    """Tables past their grace period whose topic ``<prefix>.<ks>.<table>`` does not exist (pure, but
    remembers in ``first_seen`` when each table was first listed; forgets tables no longer listed)."""
    present = set(topics)
    listed = set(tables)
    for gone in set(first_seen) - listed:
        del first_seen[gone]
    missing = []
    for path in sorted(listed):
        seen = first_seen.setdefault(path, now)
        if f"{prefix}.{path[0]}.{path[1]}" not in present and now - seen >= grace_s:
            missing.append(path)
    return missing


def describe(missing: Mapping[TablePath, object] | Iterable[TablePath]) -> str:
    names = ", ".join(".".join(p) for p in missing)
    return f"not captured: {names} ({KNOWN_CAUSES})"

"""Kafka offsets stored in PostgreSQL, in the same transaction as the rows they cover, with fencing.

On partition assignment a worker claims each partition: the claim bumps the partition's generation from a
sequence and returns the stored next offset. Every batch commit moves the offset only where the generation is
still the worker's own; a worker that lost a partition in a rebalance finds its generation replaced, its
update touches no row, and its whole transaction is rolled back (:class:`Fenced`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import Connection, errors


class Fenced(Exception):
    """Another worker owns a partition this batch covers; the batch must not commit."""

    def __init__(self, message: str, partitions: Iterable[tuple[str, int]] = ()) -> None:
        super().__init__(message)
        self.partitions = frozenset(partitions)
        """The partitions whose generation is no longer the batch's (empty: not known)."""


@dataclass(frozen=True, slots=True)
class Claim:
    topic: str
    partition: int
    next_offset: int | None
    generation: int


def ensure_meta(conn: Connection[Any]) -> None:
    """Create the sink's own tables if they are missing. Two processes doing it at once (a worker and ``cdc
    backfill`` starting on a fresh database) can both pass ``IF NOT EXISTS`` and one fail with a unique
    violation: that statement runs again (each in its own transaction or savepoint, so nothing else waits
    on it)."""
    from app.sink.ddl import META_DDL

    for statement in META_DDL:
        try:
            with conn.transaction():
                conn.execute(statement)
        except (errors.UniqueViolation, errors.DuplicateTable, errors.DuplicateObject):
            with conn.transaction():
                conn.execute(statement)  # the other process has created it: now IF NOT EXISTS holds


def claim(
    conn: Connection[Any], group_id: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], Claim]:
    """Take ownership of ``partitions`` (inside the caller's transaction) and return the stored offsets."""
    claims: dict[tuple[str, int], Claim] = {}
    for topic, partition in sorted(partitions):
        row = conn.execute(
            """INSERT INTO _cdc_checkpoints (group_id, topic, partition, next_offset, generation)
               VALUES (%s, %s, %s, -1, nextval('_cdc_generation_seq'))
               ON CONFLICT (group_id, topic, partition)
               DO UPDATE SET generation = nextval('_cdc_generation_seq'), updated_at = now()
               RETURNING next_offset, generation""",
            (group_id, topic, partition),
        ).fetchone()
        assert row is not None
        next_offset = None if row[0] < 0 else int(row[0])
        claims[(topic, partition)] = Claim(topic, partition, next_offset, int(row[1]))
    return claims


def advance(
    conn: Connection[Any],
    group_id: str,
    offsets: Mapping[tuple[str, int], int],
    generations: Mapping[tuple[str, int], int],
    events: Mapping[tuple[str, int], int] | None = None,
) -> None:
    """Store ``offsets`` (next offset to read per partition) and add ``events`` (records consumed for the
    first time: applied, dead-lettered or empty) to the exact counter; raise :class:`Fenced`, naming every
    partition whose generation is no longer ``generations``' (the caller rolls back)."""
    counts = events or {}
    stale: list[tuple[str, int]] = []
    for (topic, partition), next_offset in sorted(offsets.items()):
        cur = conn.execute(
            """UPDATE _cdc_checkpoints SET next_offset = %s, events = events + %s, updated_at = now()
               WHERE group_id = %s AND topic = %s AND partition = %s AND generation = %s""",
            (
                next_offset,
                counts.get((topic, partition), 0),
                group_id,
                topic,
                partition,
                generations[(topic, partition)],
            ),
        )
        if cur.rowcount != 1:
            stale.append((topic, partition))
    if stale:
        names = ", ".join(f"{t}[{p}]" for t, p in stale)
        raise Fenced(f"{names} owned by another worker generation", stale)

"""Which PostgreSQL advisory locks serialise work on Cassandra partitions (pure).

Several workers share a table's Kafka partitions, and a partition or range delete is keyed without
clustering values, so it reaches another worker than the rows it shadows. Whoever loads, merges and writes
the state of a Cassandra partition first takes a transaction-scoped advisory lock on it, in ascending key
order across the whole transaction (no lock-order deadlocks between batches and the TTL sweep).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from models.keycodec import encode_key
from models.mutations import Key


def partition_lock_key(keyspace: str, table: str, partition: Key) -> int:
    """A signed 64-bit key (``pg_advisory_xact_lock(bigint)``) for one Cassandra partition of one table."""
    text = json.dumps([keyspace, table, encode_key(partition)], separators=(",", ":"), sort_keys=True)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_order(keyspace: str, table: str, partitions: Iterable[Key]) -> list[int]:
    """The distinct lock keys of ``partitions``, ascending."""
    return sorted({partition_lock_key(keyspace, table, p) for p in partitions})

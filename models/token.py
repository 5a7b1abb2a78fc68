"""Cassandra's Murmur3 token of a partition key (pure), stored with each mirror row for reconciliation.

The routing key is the partition key's serialized value; for a composite key each component is written as a
2-byte length, the bytes and a 0 byte. The token is Murmur3Partitioner's hash of that routing key.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from cassandra.murmur3 import murmur3

from models.cql_types import CqlType, cell_order_bytes, pg_type
from models.errors import ValueMappingError


def routing_key(components: Sequence[bytes]) -> bytes:
    if len(components) == 1:
        return components[0]
    return b"".join(struct.pack(">H", len(c)) + c + b"\x00" for c in components)


def partition_token(types: Sequence[CqlType], values: Sequence[object]) -> int | None:
    """The token of a partition, or None when a key type has no exact serialization here (jsonb-mapped
    frozen collections, tuples, UDTs)."""
    parts: list[bytes] = []
    for t, value in zip(types, values, strict=True):
        if pg_type(t) == "jsonb" or value is None:
            return None
        try:
            parts.append(cell_order_bytes(t, value))
        except ValueMappingError:
            return None
    return int(murmur3(routing_key(parts)))

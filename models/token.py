"""Cassandra's Murmur3 token of a partition key (pure), stored with each mirror row for reconciliation.

The routing key is the partition key's serialized value; for a composite key each component is written as a
2-byte length, the bytes and a 0 byte. The token is Murmur3Partitioner's hash of that routing key.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

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


_FAST: dict[str, Callable[[object], bytes]] = {
    "int": struct.Struct(">i").pack,
    "bigint": struct.Struct(">q").pack,
    "text": lambda v: v.encode(),  # type: ignore[attr-defined]
    "varchar": lambda v: v.encode(),  # type: ignore[attr-defined]
}
"""Serializers of the common key types, as :func:`cell_order_bytes` gives them (its driver path is slower)."""


def token_function(types: Sequence[CqlType]) -> Callable[[Sequence[object]], int | None]:
    """:func:`partition_token` for one table's partition key types, what depends on the types decided once
    (the mirror computes a token per row written)."""
    fixed = tuple(types)
    if any(pg_type(t) == "jsonb" for t in fixed):
        return lambda values: None
    if len(fixed) == 1 and fixed[0].name in _FAST:
        pack, t = _FAST[fixed[0].name], fixed[0]

        def single(values: Sequence[object]) -> int | None:
            value = values[0]
            if value is None:
                return None
            try:
                return int(murmur3(pack(value)))
            except (struct.error, AttributeError, TypeError):
                return partition_token((t,), values)  # out of range or not the type: the general path says

        return single
    return lambda values: partition_token(fixed, values)

"""Sort keys reproducing Cassandra's comparators, for set elements and map keys ("Cassandra's order").

UTF-8 bytes for text, signed numbers, Float.compare for float/double (-0.0 < 0.0 < NaN), unsigned bytes for
inet, UUIDType / TimeUUIDType rules for uuids, element-wise then shorter-first for frozen collections, tuples
and UDTs.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from models.cql_types.parsing import CqlType, Native, components


def _uuid_key(t: CqlType, value: uuid.UUID) -> tuple[int, ...]:
    """UUIDType: version, then time (v1) or unsigned msb, then unsigned lsb; TimeUUIDType: time, then
    the lsb bytes compared as signed bytes."""
    msb, lsb = value.int >> 64, value.int & (2**64 - 1)
    reordered = ((msb & 0xFFFF) << 48) | (((msb >> 16) & 0xFFFF) << 32) | (msb >> 32)
    if t.name == "timeuuid":
        return (reordered, *(b - 256 if b > 127 else b for b in lsb.to_bytes(8, "big")))
    version = (msb >> 12) & 0xF
    return (version, reordered if version == 1 else msb, lsb)


def _float_key(value: float) -> tuple[bool, float, float]:
    """Java Float.compare / Double.compare: -0.0 < 0.0, NaN greatest."""
    if math.isnan(value):
        return (True, 0.0, 0.0)
    return (False, value, math.copysign(1.0, value))


def order_key(t: CqlType, value: Native) -> tuple[Any, ...]:
    """Sort key reproducing Cassandra's comparator for ``t`` (None first)."""
    if value is None:
        return (0,)
    return (1, _raw_key(t, value))


def _raw_key(t: CqlType, value: Native) -> Any:
    name = t.name
    if name in ("text", "ascii"):
        return value.encode("utf-8")
    if name in ("float", "double"):
        return _float_key(value)
    if name in ("uuid", "timeuuid"):
        return _uuid_key(t, value)
    if name == "inet":
        return value.packed
    if name == "map":
        return tuple((order_key(t.params[0], k), order_key(t.params[1], v)) for k, v in value)
    if name in ("list", "set", "vector"):
        return tuple(order_key(t.params[0], item) for item in value)
    if name in ("tuple", "udt"):
        return tuple(order_key(sub, item) for sub, item in zip(components(t), value, strict=True))
    return value

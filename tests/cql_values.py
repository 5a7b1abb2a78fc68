"""Test support for models.cql_types: what cassandra-driver hands back for a value, and both conversion paths.

Debezium values in the tests are copied from events the local stack's agent (3.4.1.Final, JsonConverter)
produced for a ``typecheck`` table; driver values are produced by cassandra-driver's own serializers
(:func:`models.cql_types.cell_bytes.driver_type`), so both sides are what the real components hand us.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from models.cql_types import from_debezium, from_driver, parse_cql_type
from models.cql_types.cell_bytes import driver_type

UTC = dt.UTC
ADDR = {"addr": [("street", "text"), ("no", "int"), ("at", "timestamp"), ("tags", "list<text>")]}


def driver_value(cql: str, value: object, udts: dict[str, Any] | None = None) -> object:
    """What cassandra-driver returns when it reads ``value`` back from a ``cql`` column."""
    casstype = driver_type(parse_cql_type(cql, udts or {}))
    return casstype.from_binary(casstype.to_binary(value, 5), 5)


def driver_value_bytes(cql: str, value: object) -> bytes:
    """cassandra-driver's serialization of ``value`` for a ``cql`` column (protocol v5)."""
    return bytes(driver_type(parse_cql_type(cql)).to_binary(value, 5))


def both(cql: str, raw: object, drv: object, udts: dict[str, Any] | None = None, **kw: Any) -> object:
    """Convert through both paths, assert they agree, return the value."""
    t = parse_cql_type(cql, udts or {})
    from_events = from_debezium(t, raw, **kw)
    from_reads = from_driver(t, driver_value(cql, drv, udts))
    assert from_events == from_reads
    return from_events

"""Unit tests for models.cql_types.cell_bytes: Cassandra's serialized bytes of a value."""

from __future__ import annotations

import datetime as dt
import ipaddress
from decimal import Decimal

import pytest
from cassandra import cqltypes
from cassandra.util import Duration

from models.cql_types import (
    cell_order_bytes,
    from_debezium,
    parse_cql_type,
)
from models.errors import ValueMappingError
from tests.cql_values import UTC, driver_value_bytes


def test_cell_order_bytes_scalars_match_cassandra_serialization() -> None:
    assert cell_order_bytes(parse_cql_type("int"), -1) == b"\xff\xff\xff\xff"
    assert cell_order_bytes(parse_cql_type("text"), "é") == "é".encode()
    assert cell_order_bytes(parse_cql_type("decimal"), Decimal("-1.10")) == b"\x00\x00\x00\x02\x92"
    assert cell_order_bytes(parse_cql_type("date"), dt.date(1970, 1, 1)) == b"\x80\x00\x00\x00"
    ts = dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert cell_order_bytes(parse_cql_type("timestamp"), ts) == b"\xff" * 8
    assert cell_order_bytes(parse_cql_type("inet"), ipaddress.ip_address("1.2.3.4")) == b"\x01\x02\x03\x04"
    duration = cell_order_bytes(parse_cql_type("duration"), dt.timedelta(days=2, microseconds=3))
    assert duration == cqltypes.DurationType.serialize(Duration(0, 2, 3000), 5)
    assert cell_order_bytes(parse_cql_type("int"), None) == b""


def test_cell_order_bytes_collections_and_jsonb() -> None:
    t = parse_cql_type("frozen<set<int>>")
    value = from_debezium(t, [3, 1, 2])
    assert cell_order_bytes(t, value) == driver_value_bytes("frozen<set<int>>", [1, 2, 3])
    vec = parse_cql_type("vector<float, 2>")
    assert cell_order_bytes(vec, [1.0, 2.0]) == b"?\x80\x00\x00@\x00\x00\x00"
    m = parse_cql_type("map<text, int>")
    assert cell_order_bytes(m, from_debezium(m, {"é": 1, "a": 2})) == '{"a":2,"é":1}'.encode()
    assert cell_order_bytes(parse_cql_type("int"), 5) > cell_order_bytes(parse_cql_type("int"), 4)
    with pytest.raises(ValueMappingError):
        cell_order_bytes(parse_cql_type("int"), 2**40)

"""Unit tests for models.cql_types.scalars: text, integers, floats, boolean, blob, uuid and inet through both paths."""

from __future__ import annotations

import ipaddress
import math
import uuid

import pytest
from cassandra import cqltypes
from hypothesis import given
from hypothesis import strategies as st

from models.cql_types import (
    cell_order_bytes,
    from_debezium,
    from_driver,
    parse_cql_type,
)
from models.errors import ValueMappingError
from tests.cql_values import both, driver_value


def test_text_types() -> None:
    assert both("text", "héllo", "héllo") == "héllo"
    assert both("ascii", "", "") == ""
    with pytest.raises(ValueMappingError, match="ascii"):
        from_debezium(parse_cql_type("ascii"), "é")


@pytest.mark.parametrize(
    ("cql", "low", "high"),
    [
        ("tinyint", -128, 127),
        ("smallint", -32768, 32767),
        ("int", -(2**31), 2**31 - 1),
        ("bigint", -(2**63), 2**63 - 1),
    ],
)
def test_integer_boundaries(cql: str, low: int, high: int) -> None:
    assert both(cql, low, low) == low
    assert both(cql, high, high) == high
    t = parse_cql_type(cql)
    for bad in (low - 1, high + 1):
        with pytest.raises(ValueMappingError, match=f"CQL {cql}"):
            from_debezium(t, bad)
        with pytest.raises(ValueMappingError):
            from_driver(t, bad)


@pytest.mark.parametrize("bad", [True, 1.5, "1", None])
def test_int_rejects_non_integers(bad: object) -> None:
    t = parse_cql_type("int")
    if bad is None:
        assert from_debezium(t, bad) is None
        return
    with pytest.raises(ValueMappingError, match=r"CQL int.*expected an integer"):
        from_debezium(t, bad)


def test_bigint_beyond_double_precision_is_exact() -> None:
    assert both("bigint", 9007199254740993, 9007199254740993) == 9007199254740993


def test_floats_nan_inf_and_float32() -> None:
    for raw, drv in (("NaN", math.nan), ("Infinity", math.inf), ("-Infinity", -math.inf)):
        for cql in ("float", "double"):
            t = parse_cql_type(cql)
            a = from_debezium(t, raw)
            b = from_driver(t, driver_value(cql, drv))
            assert isinstance(a, float)
            assert isinstance(b, float)
            assert (math.isnan(a) and math.isnan(b)) or a == b
    # Jackson writes float32 0.1f as 0.1, the driver reads 0.10000000149011612: both give 0.1
    assert both("float", 0.1, 0.1) == 0.1
    assert both("float", 16777217, 16777217.0) == 16777216.0
    assert both("float", 3.4028234663852886e38, 3.4028234663852886e38) == 3.4028235e38
    assert both("float", -0.0, -0.0) == 0.0
    assert both("double", 0.1, 0.1) == 0.1
    with pytest.raises(ValueMappingError, match="float32"):
        from_debezium(parse_cql_type("float"), 3.4e39)
    assert from_debezium(parse_cql_type("double"), 3.4e39) == 3.4e39
    with pytest.raises(ValueMappingError):
        from_debezium(parse_cql_type("double"), "nan")


def test_boolean_and_blob() -> None:
    assert both("boolean", False, False) is False
    assert both("blob", "AP8Q", b"\x00\xff\x10") == b"\x00\xff\x10"
    assert both("blob", "", b"") == b""
    assert from_debezium(parse_cql_type("blob"), b"\x01") == b"\x01"
    with pytest.raises(ValueMappingError, match="base64"):
        from_debezium(parse_cql_type("blob"), "not base64!")
    with pytest.raises(ValueMappingError):
        from_debezium(parse_cql_type("boolean"), 1)


def test_uuid_timeuuid() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert both("uuid", str(u), u) == u
    tu = uuid.UUID("d2177dd0-eaa2-11de-a572-001b779c76e3")
    assert both("timeuuid", str(tu), tu) == tu
    with pytest.raises(ValueMappingError, match="version 1"):
        from_debezium(parse_cql_type("timeuuid"), str(u))
    with pytest.raises(ValueMappingError, match="not a UUID"):
        from_debezium(parse_cql_type("uuid"), "12345")


@pytest.mark.parametrize(
    ("raw", "drv", "expected"),
    [
        ("/0:0:0:0:0:0:0:1", "::1", ipaddress.ip_address("::1")),
        ("/10.0.0.1", "10.0.0.1", ipaddress.ip_address("10.0.0.1")),
        ("/2001:db8:0:0:0:0:0:1", "2001:db8::1", ipaddress.ip_address("2001:db8::1")),
        ("/1.2.3.4", "::ffff:1.2.3.4", ipaddress.ip_address("1.2.3.4")),
        ("localhost/127.0.0.1", "127.0.0.1", ipaddress.ip_address("127.0.0.1")),
    ],
)
def test_inet(raw: str, drv: str, expected: object) -> None:
    assert both("inet", raw, drv) == expected


@given(st.floats(width=32, allow_nan=False))
def test_float32_paths_agree(value: float) -> None:
    t = parse_cql_type("float")
    from_events = from_debezium(t, value)
    assert from_events == from_driver(t, driver_value("float", value))
    assert cell_order_bytes(t, from_events) == bytes(cqltypes.FloatType.serialize(value, 5))

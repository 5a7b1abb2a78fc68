"""Unit tests for models.cql_types.conversion: the entry points from_debezium, from_driver and debezium_converter."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from models.cql_types import (
    debezium_converter,
    from_debezium,
    from_driver,
    parse_cql_type,
)
from models.errors import ValueMappingError


def test_null_stays_null() -> None:
    for cql in ("int", "text", "list<int>", "frozen<map<int, text>>", "tuple<int>", "vector<float, 2>"):
        t = parse_cql_type(cql)
        assert from_debezium(t, None) is None
        assert from_driver(t, None) is None


def test_wrong_json_shapes() -> None:
    cases: Sequence[tuple[str, object]] = [
        ("list<int>", {"a": 1}),
        ("list<int>", "[1]"),
        ("set<int>", [1, "x"]),
        ("map<int, int>", 5),
        ("frozen<tuple<int, text>>", 5),
        ("frozen<tuple<int>>", [1, 2]),
        ("text", 5),
        ("uuid", 5),
        ("inet", "nope"),
        ("date", "2020-01-01"),
    ]
    for cql, raw in cases:
        with pytest.raises(ValueMappingError, match="CQL"):
            from_debezium(parse_cql_type(cql), raw)


def test_debezium_converter_is_from_debezium_resolved_once() -> None:
    for cql, raw in (
        ("int", 5),
        ("decimal", "1.10"),
        ("timestamp", -1),
        ("list<int>", [2, 1]),
        ("text", None),
    ):
        t = parse_cql_type(cql)
        assert debezium_converter(t)(raw) == from_debezium(t, raw)
    with pytest.raises(ValueMappingError, match="CQL date"):
        debezium_converter(parse_cql_type("date"))("2020-01-01")


def test_driver_converter_is_from_driver_resolved_once() -> None:
    import datetime as dt
    import decimal
    import ipaddress
    import uuid

    from cassandra.util import Date, Duration, Time

    from models.cql_types import driver_converter

    for cql, value in (
        ("int", 5),
        ("bigint", -(2**63)),
        ("text", "héllo"),
        ("decimal", decimal.Decimal("1.10")),
        ("varint", 10**30),
        ("timestamp", dt.datetime(2020, 1, 1, 12, 0, 0, 123000)),
        ("date", Date(dt.date(1999, 12, 31))),
        ("time", Time(1_000_000_123)),
        ("duration", Duration(1, 2, 3)),
        ("inet", ipaddress.ip_address("::ffff:10.0.0.1")),
        ("uuid", uuid.UUID(int=7)),
        ("set<int>", {2, 1}),
        ("map<text, int>", {"b": 1, "a": 2}),
        ("frozen<tuple<int, text>>", (1, "x")),
        ("text", None),
    ):
        t = parse_cql_type(cql)
        assert driver_converter(t)(value) == from_driver(t, value), cql
    with pytest.raises(ValueMappingError, match="CQL int"):
        driver_converter(parse_cql_type("int"))(2**40)

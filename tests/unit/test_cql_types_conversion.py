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

"""Unit tests for models.cql_types.structures: collections, tuples, UDTs and vectors through both paths."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal

import pytest
from cassandra.util import Date

from models.cql_types import (
    JsonbValue,
    from_debezium,
    from_driver,
    parse_cql_type,
)
from models.errors import ValueMappingError
from tests.cql_values import ADDR, UTC, both


def test_list_and_set_arrays() -> None:
    assert both("list<int>", [3, 1, 2, 1], [3, 1, 2, 1]) == [3, 1, 2, 1]
    assert both("set<int>", [3, -1, 2], {3, -1, 2}) == [-1, 2, 3]
    ts = both("frozen<list<timestamp>>", [-1, 1709208000123], [-1, 1709208000123])
    assert ts == [
        dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        dt.datetime(2024, 2, 29, 12, 0, 0, 123000, tzinfo=UTC),
    ]
    assert both("set<date>", [19723, 0], {Date(19723), Date(0)}) == [dt.date(1970, 1, 1), dt.date(2024, 1, 1)]


def test_empty_multicell_collection_is_null_but_frozen_is_not() -> None:
    assert from_debezium(parse_cql_type("list<int>"), []) is None
    assert from_driver(parse_cql_type("set<int>"), None) is None
    assert both("frozen<list<timestamp>>", [], []) == []
    assert from_debezium(parse_cql_type("frozen<map<int, int>>"), []) == JsonbValue([])


def test_multicell_hints_pass_through() -> None:
    # DELETE m['a'] arrives as {"a": null}; an appended element arrives alone
    assert from_debezium(parse_cql_type("map<text, int>"), {"a": None}) == JsonbValue({"a": None})
    assert from_debezium(parse_cql_type("list<int>"), [9]) == [9]


def test_map_text_keys_object_others_pairs() -> None:
    assert both("map<text, int>", {"b": 2, "a": 1}, {"b": 2, "a": 1}) == JsonbValue({"a": 1, "b": 2})
    assert both("map<int, text>", [[10, "x"], [-5, "y"]], {10: "x", -5: "y"}) == JsonbValue(
        [[-5, "y"], [10, "x"]]
    )
    # inet keys arrive as a JSON object keyed by Java's "/ip" text (live event)
    inet_map = both(
        "map<inet, blob>", {"/10.0.0.1": "AQ==", "/1.2.3.4": ""}, {"10.0.0.1": b"\x01", "1.2.3.4": b""}
    )
    assert inet_map == JsonbValue([["1.2.3.4", ""], ["10.0.0.1", "AQ=="]])
    # Avro shape: array of {"key", "value"} records
    t = parse_cql_type("map<int, text>")
    assert from_debezium(t, [{"key": 1, "value": "a"}]) == JsonbValue([[1, "a"]])
    with pytest.raises(ValueMappingError, match="map entry"):
        from_debezium(t, [[1, "a", "b"]])


def test_frozen_map_date_decimal_keys() -> None:
    raw = {"scale": 2, "value": base64.b64encode((110).to_bytes(1, "big")).decode()}
    drv = {Date(10957): Decimal("1.10"), Date(-25567): Decimal("-0.000001")}
    minus = {"scale": 6, "value": base64.b64encode((-1).to_bytes(1, "big", signed=True)).decode()}
    result = both("frozen<map<date, decimal>>", [[10957, raw], [-25567, minus]], drv)
    assert result == JsonbValue([["1900-01-01", "-0.000001"], ["2000-01-01", "1.10"]])


def test_tuple_fields_and_nulls() -> None:
    raw = {"field1": 7, "field2": "seven", "field3": -1}
    result = both("frozen<tuple<int, text, timestamp>>", raw, (7, "seven", -1))
    assert result == JsonbValue([7, "seven", "1969-12-31T23:59:59.999Z"])
    empty = {"field1": None, "field2": None, "field3": None}
    assert both("frozen<tuple<int, text, timestamp>>", empty, (None, None, None)) == JsonbValue(
        [None, None, None]
    )
    with pytest.raises(ValueMappingError, match="unknown field"):
        from_debezium(parse_cql_type("tuple<int>"), {"field2": 1})


def test_list_of_tuples_and_nested_lists() -> None:
    raw = [{"field1": 1, "field2": "a"}, {"field1": 2, "field2": None}]
    result = both("list<frozen<tuple<int, text>>>", raw, [(1, "a"), (2, None)])
    assert result == JsonbValue([[1, "a"], [2, None]])
    assert both("list<frozen<list<int>>>", [[1, 2], [], [3]], [[1, 2], [], [3]]) == JsonbValue(
        [[1, 2], [], [3]]
    )


def test_udt_with_null_fields() -> None:
    raw = {"street": "Main", "no": 5, "at": 1577836800000, "tags": ["x", "y"]}
    drv = ("Main", 5, dt.datetime(2020, 1, 1), ["x", "y"])
    result = both("frozen<addr>", raw, drv, ADDR)
    assert result == JsonbValue(
        {"street": "Main", "no": 5, "at": "2020-01-01T00:00:00.000Z", "tags": ["x", "y"]}
    )
    nulls = both("frozen<addr>", {"street": None, "no": None, "at": None, "tags": None}, (None,) * 4, ADDR)
    assert nulls == JsonbValue({"street": None, "no": None, "at": None, "tags": None})
    partial = from_debezium(parse_cql_type("frozen<addr>", ADDR), {"no": 1})
    assert partial == JsonbValue({"street": None, "no": 1, "at": None, "tags": None})
    listed = both("list<frozen<addr>>", [{"street": "B"}], [("B", None, None, None)], ADDR)
    assert listed == JsonbValue([{"street": "B", "no": None, "at": None, "tags": None}])
    with pytest.raises(ValueMappingError, match="CQL frozen<addr>"):
        from_debezium(parse_cql_type("frozen<addr>", ADDR), {"zip": 1})


def test_vector() -> None:
    assert both("vector<float, 3>", [1.0, 2.5, 0.1], [1.0, 2.5, 0.1]) == [1.0, 2.5, 0.1]
    t = parse_cql_type("vector<float, 3>")
    with pytest.raises(ValueMappingError, match="vector needs 3 elements, got 2"):
        from_debezium(t, [1.0, 2.0])
    with pytest.raises(ValueMappingError, match="vector needs 3"):
        from_driver(t, [1.0, 2.0, 3.0, 4.0])
    assert from_debezium(parse_cql_type("vector<int, 2>"), [1, 2]) == JsonbValue([1, 2])

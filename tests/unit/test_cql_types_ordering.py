"""Unit tests for models.cql_types.ordering: Cassandra's order for set elements and map keys."""

from __future__ import annotations

import math
import uuid

from hypothesis import given
from hypothesis import strategies as st

from models.cql_types import (
    JsonbValue,
    from_debezium,
    from_driver,
    parse_cql_type,
)
from tests.cql_values import both, driver_value


def test_set_text_sorted_by_utf8_bytes() -> None:
    # live event order was ["a", "b", "é", "Z"] (HashSet); Cassandra orders by UTF-8 bytes
    assert both("set<text>", ["a", "b", "é", "Z"], {"b", "a", "é", "Z"}) == ["Z", "a", "b", "é"]


def test_set_uuid_and_timeuuid_order() -> None:
    v4_high = uuid.UUID("ffffffff-0000-4000-8000-000000000000")
    v1 = uuid.UUID("00000000-0000-1000-8000-000000000000")
    v4_low = uuid.UUID("00000000-0000-4000-8000-0000000000ff")
    result = both("set<uuid>", [str(v4_high), str(v1), str(v4_low)], {v4_high, v1, v4_low})
    assert result == [v1, v4_low, v4_high]  # version first, then unsigned bytes
    early = uuid.UUID("ffffffff-0000-1000-8000-000000000000")  # time_low high, time_hi 0
    late = uuid.UUID("00000000-0001-1000-8000-000000000000")  # time_mid 1 dominates time_low
    signed_low = uuid.UUID("ffffffff-0000-1000-8000-ff0000000000")  # same time; node byte 0xff is -1
    result = both("set<timeuuid>", [str(late), str(early), str(signed_low)], {late, early, signed_low})
    assert result == [signed_low, early, late]


def test_set_float_order_matches_java() -> None:
    t = parse_cql_type("set<double>")
    result = from_debezium(t, ["NaN", 1.0, 0.0, -0.0, "-Infinity"])
    assert isinstance(result, list)
    assert result[0] == -math.inf
    assert math.copysign(1.0, result[1]) == -1.0
    assert math.copysign(1.0, result[2]) == 1.0
    assert result[3] == 1.0
    assert math.isnan(result[4])


@given(st.sets(st.integers(min_value=-(2**31), max_value=2**31 - 1)))
def test_set_int_order_matches_driver(values: set[int]) -> None:
    raw = list(values)
    result = from_debezium(parse_cql_type("set<int>"), raw)
    expected = from_driver(parse_cql_type("set<int>"), driver_value("set<int>", values)) if values else None
    assert result == expected
    if values:
        assert result == sorted(values)


def test_nested_frozen_collections_sorted() -> None:
    cql = "frozen<set<frozen<list<int>>>>"
    assert both(cql, [[1, 2], [0], [1]], [[1, 2], [0], [1]]) == JsonbValue([[0], [1], [1, 2]])
    cql = "frozen<map<text, frozen<set<bigint>>>>"
    big = 2**60
    result = both(cql, {"k": [big, 1]}, {"k": {big, 1}})
    assert result == JsonbValue({"k": [1, str(big)]})

"""Unit tests for models.cql_types.jsonb: the jsonb encoding and JsonbValue."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import uuid
from decimal import Decimal

from models.cql_types import (
    JsonbValue,
    from_debezium,
    parse_cql_type,
    to_json_compatible,
)


def test_json_encoding_details() -> None:
    t = parse_cql_type("frozen<tuple<bigint, varint, decimal, double, blob, time, inet, uuid, boolean>>")
    value = (
        2**53,
        -(2**53) + 1,
        Decimal("1E+3"),
        math.nan,
        b"\x00",
        dt.time(1, 2, 3),
        ipaddress.ip_address("::1"),
        uuid.UUID(int=1),
        True,
    )
    assert to_json_compatible(t, value) == [
        "9007199254740992",
        -9007199254740991,
        "1000",
        "NaN",
        "AA==",
        "01:02:03.000000",
        "::1",
        "00000000-0000-0000-0000-000000000001",
        True,
    ]
    jsonb = from_debezium(parse_cql_type("frozen<tuple<int>>"), {"field1": 1})
    assert to_json_compatible(parse_cql_type("frozen<tuple<int>>"), jsonb) == [1]
    json.dumps(to_json_compatible(t, value), allow_nan=False)


def test_jsonb_value_compares_by_content() -> None:
    assert JsonbValue({"a": [1]}) == JsonbValue({"a": [1]})
    assert JsonbValue({"a": [1]}) != JsonbValue({"a": [2]})
    plain: object = [1]
    assert JsonbValue([1]) != plain
    assert JsonbValue([1]).obj == [1]

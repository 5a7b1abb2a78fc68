"""Unit tests for models.cql_types.

Debezium values below are copied from events the local stack's agent (3.4.1.Final, JsonConverter) produced
for a ``typecheck`` table; driver values are produced by cassandra-driver's own serializers, so both sides
are what the real components hand us.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import math
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from cassandra import cqltypes
from cassandra.util import Date, Duration, Time
from hypothesis import given
from hypothesis import strategies as st

from models.cql_types import (
    CqlType,
    DebeziumModes,
    JsonbValue,
    UnsupportedType,
    cell_order_bytes,
    format_cql_type,
    from_debezium,
    from_driver,
    is_multicell,
    parse_cql_type,
    pg_type,
    to_json_compatible,
)
from models.errors import ValueMappingError

UTC = dt.UTC
ADDR = {"addr": [("street", "text"), ("no", "int"), ("at", "timestamp"), ("tags", "list<text>")]}

_SCALAR_CASS: dict[str, Any] = {
    "text": cqltypes.UTF8Type,
    "ascii": cqltypes.AsciiType,
    "tinyint": cqltypes.ByteType,
    "smallint": cqltypes.ShortType,
    "int": cqltypes.Int32Type,
    "bigint": cqltypes.LongType,
    "varint": cqltypes.IntegerType,
    "decimal": cqltypes.DecimalType,
    "float": cqltypes.FloatType,
    "double": cqltypes.DoubleType,
    "boolean": cqltypes.BooleanType,
    "blob": cqltypes.BytesType,
    "date": cqltypes.SimpleDateType,
    "time": cqltypes.TimeType,
    "timestamp": cqltypes.DateType,
    "duration": cqltypes.DurationType,
    "uuid": cqltypes.UUIDType,
    "timeuuid": cqltypes.TimeUUIDType,
    "inet": cqltypes.InetAddressType,
}


def _casstype(t: CqlType) -> Any:
    if t.name in _SCALAR_CASS:
        return _SCALAR_CASS[t.name]
    if t.name == "udt":
        names = [name for name, _ in t.udt_fields]
        subtypes = [_casstype(sub) for _, sub in t.udt_fields]
        return cqltypes.UserType.make_udt_class("typecheck", t.udt_name, names, subtypes)
    if t.name == "vector":
        return cqltypes.VectorType.apply_parameters([_casstype(t.params[0]), t.dimension], None)
    base = {"list": cqltypes.ListType, "set": cqltypes.SetType, "map": cqltypes.MapType}
    collection = base.get(t.name, cqltypes.TupleType)
    return collection.apply_parameters([_casstype(p) for p in t.params], None)


def driver_value(cql: str, value: object, udts: dict[str, Any] | None = None) -> object:
    """What cassandra-driver returns when it reads ``value`` back from a ``cql`` column."""
    casstype = _casstype(parse_cql_type(cql, udts or {}))
    return casstype.from_binary(casstype.to_binary(value, 5), 5)


def both(cql: str, raw: object, drv: object, udts: dict[str, Any] | None = None, **kw: Any) -> object:
    """Convert through both paths, assert they agree, return the value."""
    t = parse_cql_type(cql, udts or {})
    from_events = from_debezium(t, raw, **kw)
    from_reads = from_driver(t, driver_value(cql, drv, udts))
    assert from_events == from_reads
    return from_events


# ----------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int", CqlType("int")),
        ("varchar", CqlType("text")),
        ("TEXT", CqlType("text")),
        ("list<int>", CqlType("list", (CqlType("int"),))),
        ("frozen<set<uuid>>", CqlType("set", (CqlType("uuid"),), frozen=True)),
        (
            "frozen<map<text, list<int>>>",
            CqlType("map", (CqlType("text"), CqlType("list", (CqlType("int"),), frozen=True)), frozen=True),
        ),
        ("list<frozen<list<int>>>", CqlType("list", (CqlType("list", (CqlType("int"),), frozen=True),))),
        ("vector<float, 3>", CqlType("vector", (CqlType("float"),), dimension=3)),
        (
            "frozen<tuple<int, text, timestamp>>",
            CqlType("tuple", (CqlType("int"), CqlType("text"), CqlType("timestamp")), frozen=True),
        ),
        ("tuple<int, text>", CqlType("tuple", (CqlType("int"), CqlType("text")), frozen=True)),
    ],
)
def test_parse_native_and_collections(text: str, expected: CqlType) -> None:
    assert parse_cql_type(text) == expected


def test_parse_udt_frozen_and_multicell() -> None:
    frozen = parse_cql_type("frozen<addr>", ADDR)
    assert frozen.name == "udt"
    assert frozen.frozen
    assert frozen.udt_name == "addr"
    assert [name for name, _ in frozen.udt_fields] == ["street", "no", "at", "tags"]
    assert frozen.udt_fields[3][1] == CqlType("list", (CqlType("text"),), frozen=True)
    assert not parse_cql_type("addr", ADDR).frozen
    inner = parse_cql_type("map<text, frozen<addr>>", ADDR).params[1]
    assert inner.frozen
    assert inner.udt_name == "addr"


def test_parse_nested_and_quoted_udts() -> None:
    udts = {
        "Point": [("x", "double"), ("y", "double")],
        "shape": [("name", "text"), ("pts", 'list<frozen<"Point">>')],
    }
    shape = parse_cql_type("list<frozen<shape>>", udts).params[0]
    assert shape.udt_fields[1][1].params[0].udt_name == "Point"
    assert parse_cql_type('frozen<"Point">', udts).udt_name == "Point"
    assert parse_cql_type("ks.shape", udts).udt_name == "shape"


@pytest.mark.parametrize(
    "text",
    [
        "nosuchtype",
        "list<int",
        "map<int>",
        "list<int, text>",
        "vector<float, 0>",
        "vector<float>",
        "'org.apache.cassandra.db.marshal.DynamicCompositeType(s=>UTF8Type)'",
        "int>",
        "frozen<>",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(UnsupportedType):
        parse_cql_type(text)


def test_parse_rejects_recursive_udt() -> None:
    with pytest.raises(UnsupportedType, match="too deep"):
        parse_cql_type("loop", {"loop": [("next", "frozen<loop>")]})


def test_format_round_trips() -> None:
    for text in [
        "frozen<map<text, frozen<list<int>>>>",
        "vector<float, 3>",
        "list<frozen<tuple<int, text>>>",
    ]:
        assert format_cql_type(parse_cql_type(text)) == text


# ----------------------------------------------------------------------------------------------- type map


@pytest.mark.parametrize(
    ("cql", "pg"),
    [
        ("text", "text"),
        ("ascii", "text"),
        ("varchar", "text"),
        ("tinyint", "smallint"),
        ("smallint", "smallint"),
        ("int", "integer"),
        ("bigint", "bigint"),
        ("counter", "bigint"),
        ("varint", "numeric"),
        ("decimal", "numeric"),
        ("float", "real"),
        ("double", "double precision"),
        ("boolean", "boolean"),
        ("blob", "bytea"),
        ("date", "date"),
        ("time", "time"),
        ("timestamp", "timestamptz"),
        ("duration", "interval"),
        ("uuid", "uuid"),
        ("timeuuid", "uuid"),
        ("inet", "inet"),
        ("list<text>", "text[]"),
        ("set<inet>", "inet[]"),
        ("frozen<list<timestamp>>", "timestamptz[]"),
        ("list<frozen<list<int>>>", "jsonb"),
        ("set<frozen<tuple<int, text>>>", "jsonb"),
        ("map<text, int>", "jsonb"),
        ("frozen<tuple<int, text>>", "jsonb"),
        ("vector<float, 3>", "real[]"),
        ("vector<double, 3>", "jsonb"),
    ],
)
def test_pg_type(cql: str, pg: str) -> None:
    assert pg_type(parse_cql_type(cql)) == pg


def test_pg_type_udt_and_multicell() -> None:
    assert pg_type(parse_cql_type("frozen<addr>", ADDR)) == "jsonb"
    assert is_multicell(parse_cql_type("list<int>"))
    assert is_multicell(parse_cql_type("addr", ADDR))
    assert not is_multicell(parse_cql_type("frozen<map<int, int>>"))
    assert not is_multicell(parse_cql_type("tuple<int>"))
    assert not is_multicell(parse_cql_type("vector<float, 2>"))


# ------------------------------------------------------------------------------------ scalars, both paths


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


def test_varint_encodings() -> None:
    big = -98765432109876543210
    t = parse_cql_type("varint")
    assert both("varint", str(big), big) == big
    two_complement = big.to_bytes(9, "big", signed=True)
    assert (
        from_debezium(t, base64.b64encode(two_complement).decode(), modes=DebeziumModes(varint="precise"))
        == big
    )
    assert from_debezium(t, Decimal(big)) == big
    assert from_debezium(t, -5) == -5
    # the agent's default LONG mode wrapped 123456789012345678901234567890 to its low 64 bits (live event)
    assert from_debezium(t, -4362896299872285998) == -4362896299872285998
    with pytest.raises(ValueMappingError):
        from_debezium(t, "12x")
    with pytest.raises(ValueMappingError):
        from_debezium(t, "12", modes=DebeziumModes(varint="long"))


def test_decimal_precise_struct_exact() -> None:
    value = Decimal("-12345678901234567890123456789012345678901234567890.0000000000000000000001")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    unscaled = int("".join(map(str, digits))) * (-1 if sign else 1)
    raw = {"scale": -exponent, "value": base64.b64encode(unscaled.to_bytes(40, "big", signed=True)).decode()}
    result = both("decimal", raw, value)
    assert isinstance(result, Decimal)
    assert result.as_tuple() == value.as_tuple()


def test_decimal_string_and_negative_scale() -> None:
    assert both("decimal", "12345678901234567890.123456789", Decimal("12345678901234567890.123456789"))
    assert both("decimal", "-0.000000000000000000000000000001", Decimal("-1E-30")) == Decimal("-1E-30")
    raw = {"scale": -10, "value": base64.b64encode(b"\x01").decode()}
    assert both("decimal", raw, Decimal("1E+10")) == Decimal("1E+10")


def test_decimal_refuses_floats_unless_double_mode() -> None:
    t = parse_cql_type("decimal")
    with pytest.raises(ValueMappingError, match=r"decimal\.handling\.mode"):
        from_debezium(t, 1.2345678901234567e19)
    lossy = from_debezium(t, 1.2345678901234567e19, modes=DebeziumModes(decimal="double"))
    assert lossy == Decimal("1.2345678901234567E+19")
    with pytest.raises(ValueMappingError, match="finite"):
        from_debezium(t, "NaN")


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


def test_date() -> None:
    assert both("date", -1, Date(dt.date(1969, 12, 31))) == dt.date(1969, 12, 31)
    assert both("date", -719162, Date(dt.date(1, 1, 1))) == dt.date(1, 1, 1)
    assert both("date", 19723, Date(19723)) == dt.date(2024, 1, 1)
    with pytest.raises(ValueMappingError, match=r"1\.\.9999"):
        from_debezium(parse_cql_type("date"), -800000)


def test_time_truncates_nanoseconds() -> None:
    result = both("time", 86399123456789, Time(86399123456789))
    assert result == dt.time(23, 59, 59, 123456)
    assert both("time", 999, Time(999)) == dt.time(0, 0, 0, 0)
    for bad in (-1, 86400 * 10**9):
        with pytest.raises(ValueMappingError, match="time"):
            from_debezium(parse_cql_type("time"), bad)


def test_timestamp_utc_and_before_1970() -> None:
    result = both("timestamp", -1, dt.datetime(1969, 12, 31, 23, 59, 59, 999000))
    assert result == dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert isinstance(result, dt.datetime)
    assert result.tzinfo is not None
    far = both("timestamp", 9223372036854, dt.datetime(2262, 4, 11, 23, 47, 16, 854000))
    assert far == dt.datetime(2262, 4, 11, 23, 47, 16, 854000, tzinfo=UTC)
    t = parse_cql_type("timestamp")
    aware = dt.datetime(2024, 1, 1, 1, 0, 0, 123999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert from_driver(t, aware) == dt.datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    with pytest.raises(ValueMappingError, match=r"1\.\.9999"):
        from_debezium(t, 2**62)


def test_duration_months_days_nanos() -> None:
    # live event: Duration(14 months, 3 days, 4000001234 ns) -> 36547204000001234 (a month is 30 days)
    result = both("duration", 36547204000001234, Duration(14, 3, 4000001234))
    assert result == dt.timedelta(days=423, seconds=4, microseconds=1)
    negative = both("duration", -2764800000000003, Duration(-1, -2, -3))
    assert negative == dt.timedelta(days=-32)
    assert both("duration", -1999, Duration(0, 0, -1999)) == dt.timedelta(microseconds=-1)
    assert to_json_compatible(parse_cql_type("duration"), result) == "P423DT4.000001S"
    assert to_json_compatible(parse_cql_type("duration"), negative) == "-P32DT0.000000S"


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


def test_null_stays_null() -> None:
    for cql in ("int", "text", "list<int>", "frozen<map<int, text>>", "tuple<int>", "vector<float, 2>"):
        t = parse_cql_type(cql)
        assert from_debezium(t, None) is None
        assert from_driver(t, None) is None


# -------------------------------------------------------------------------------------------- collections


def test_list_and_set_arrays() -> None:
    assert both("list<int>", [3, 1, 2, 1], [3, 1, 2, 1]) == [3, 1, 2, 1]
    assert both("set<int>", [3, -1, 2], {3, -1, 2}) == [-1, 2, 3]
    ts = both("frozen<list<timestamp>>", [-1, 1709208000123], [-1, 1709208000123])
    assert ts == [
        dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        dt.datetime(2024, 2, 29, 12, 0, 0, 123000, tzinfo=UTC),
    ]
    assert both("set<date>", [19723, 0], {Date(19723), Date(0)}) == [dt.date(1970, 1, 1), dt.date(2024, 1, 1)]


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


def test_nested_frozen_collections_sorted() -> None:
    cql = "frozen<set<frozen<list<int>>>>"
    assert both(cql, [[1, 2], [0], [1]], [[1, 2], [0], [1]]) == JsonbValue([[0], [1], [1, 2]])
    cql = "frozen<map<text, frozen<set<bigint>>>>"
    big = 2**60
    result = both(cql, {"k": [big, 1]}, {"k": {big, 1}})
    assert result == JsonbValue({"k": [1, str(big)]})


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


def test_error_message_names_type_and_value() -> None:
    with pytest.raises(ValueMappingError) as info:
        from_debezium(parse_cql_type("frozen<list<tinyint>>"), [1, 300])
    assert "frozen<list<tinyint>>" in str(info.value)
    assert "300" in str(info.value)


# ---------------------------------------------------------------------------------------- json and bytes


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


def driver_value_bytes(cql: str, value: object) -> bytes:
    return bytes(_casstype(parse_cql_type(cql)).to_binary(value, 5))


# ------------------------------------------------------------------------------------------- properties


def _precise_struct(value: Decimal) -> dict[str, object]:
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    size = max(1, (unscaled.bit_length() + 8) // 8)
    return {
        "scale": -exponent,
        "value": base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode(),
    }


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d.adjusted()) < 400)
)
def test_decimal_round_trip_is_exact(value: Decimal) -> None:
    t = parse_cql_type("decimal")
    from_struct = from_debezium(t, _precise_struct(value))
    assert isinstance(from_struct, Decimal)
    assert from_struct.as_tuple()[1:] == value.as_tuple()[1:]
    assert from_struct == value
    assert from_debezium(t, format(value, "f")) == value
    assert from_driver(t, driver_value("decimal", value)) == from_struct
    assert cell_order_bytes(t, from_struct) == bytes(cqltypes.DecimalType.serialize(value, 5))


@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_varint_round_trip(value: int) -> None:
    t = parse_cql_type("varint")
    size = max(1, (value.bit_length() + 8) // 8)
    encoded = base64.b64encode(value.to_bytes(size, "big", signed=True)).decode()
    assert from_debezium(t, encoded, modes=DebeziumModes(varint="precise")) == value
    assert from_debezium(t, str(value)) == value == from_driver(t, driver_value("varint", value))
    assert json.loads(json.dumps(to_json_compatible(t, value))) in (value, str(value))


@given(st.sets(st.integers(min_value=-(2**31), max_value=2**31 - 1)))
def test_set_int_order_matches_driver(values: set[int]) -> None:
    raw = list(values)
    result = from_debezium(parse_cql_type("set<int>"), raw)
    expected = from_driver(parse_cql_type("set<int>"), driver_value("set<int>", values)) if values else None
    assert result == expected
    if values:
        assert result == sorted(values)


@given(st.integers(min_value=0, max_value=86400 * 10**9 - 1))
def test_time_paths_agree(nanos: int) -> None:
    t = parse_cql_type("time")
    assert from_debezium(t, nanos) == from_driver(t, Time(nanos))


@given(st.floats(width=32, allow_nan=False))
def test_float32_paths_agree(value: float) -> None:
    t = parse_cql_type("float")
    from_events = from_debezium(t, value)
    assert from_events == from_driver(t, driver_value("float", value))
    assert cell_order_bytes(t, from_events) == bytes(cqltypes.FloatType.serialize(value, 5))

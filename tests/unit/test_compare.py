"""The comparison's independent oracle (app.compare): driver and psycopg values to one canonical form.

Every expected value is written out by hand from the rules in the module docstring; none is computed by the
code under test or by models.cql_types.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import uuid
from collections import namedtuple
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cassandra.util import Date, Duration, OrderedMapSerializedKey, SortedSet, Time

from app.compare import (
    Row,
    TableDiff,
    canonical_cassandra,
    canonical_json,
    canonical_postgres,
    cassandra_rows,
    diff_rows,
    stored_as_jsonb,
)
from app.testing import cql_table
from models.cql_types import parse_cql_type
from models.mutations import Key

U = "0b6f8f5e-6a4e-4f4b-9d84-2c9e1f0a7b3c"

# (CQL type, cassandra-driver value, canonical form)
CASSANDRA: list[tuple[str, object, object]] = [
    ("text", "ünïcode ✓", "ünïcode ✓"),
    ("ascii", "", ""),
    ("tinyint", -128, -128),
    ("bigint", -(2**63), -9223372036854775808),
    ("varint", -(10**40) - 7, -10000000000000000000000000000000000000007),
    ("decimal", Decimal("1.10"), "1.10"),
    (
        "decimal",
        Decimal("-12345678901234567890.123456789012345678"),
        "-12345678901234567890.123456789012345678",
    ),
    ("decimal", Decimal("1E+3"), "1000"),
    ("decimal", Decimal("1E-6"), "0.000001"),
    ("float", 0.10000000149011612, "0.1"),
    ("float", 3.4028234663852886e38, "3.4028235e+38"),
    ("float", -0.0, "-0.0"),
    ("float", math.nan, "NaN"),
    ("float", -math.inf, "-Infinity"),
    ("double", 0.1, "0.1"),
    ("double", -1.7976931348623157e308, "-1.7976931348623157e+308"),
    ("double", math.inf, "Infinity"),
    ("double", -0.0, "-0.0"),
    ("boolean", True, True),
    ("boolean", False, False),
    ("blob", b"\x00\xff\x10", "0x00ff10"),
    ("blob", b"", "0x"),
    ("uuid", uuid.UUID(U.upper()), U),
    ("timeuuid", uuid.UUID("a4a70900-24e1-11df-8924-001ff3591711"), "a4a70900-24e1-11df-8924-001ff3591711"),
    ("inet", "2001:0db8:0000::1", "2001:db8::1"),
    ("inet", "10.0.0.1", "10.0.0.1"),
    ("inet", "::ffff:1.2.3.4", "1.2.3.4"),
    ("date", Date(dt.date(1, 1, 1)), "0001-01-01"),
    ("date", Date(-1), "1969-12-31"),
    ("date", dt.date(9999, 12, 31), "9999-12-31"),
    ("time", Time(86_399_999_999_999), "23:59:59.999999"),
    ("time", Time(1_999), "00:00:00.000001"),
    ("time", dt.time(12, 30, 5, 250), "12:30:05.000250"),
    ("timestamp", dt.datetime(1969, 12, 31, 23, 59, 59, 999000), "1969-12-31T23:59:59.999000Z"),
    ("timestamp", dt.datetime(1, 1, 1), "0001-01-01T00:00:00.000000Z"),
    (
        "timestamp",
        dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "2026-06-01T10:00:00.000000Z",
    ),
    ("duration", Duration(0, 3, 1_500_000_000), "259201.500000s"),
    ("duration", Duration(1, 2, 3_999), "2764800.000003s"),
    ("duration", Duration(-1, -2, -1_500), "-2764800.000001s"),
    ("duration", Duration(0, 0, 0), "0.000000s"),
    ("list<int>", [3, 1, 2], [3, 1, 2]),
    ("set<text>", SortedSet(["b", "a"]), ["a", "b"]),
    ("set<int>", SortedSet([10, 9]), [10, 9]),  # sorted by JSON text: "10" < "9"
    ("frozen<set<int>>", SortedSet([3, 1]), [1, 3]),
    ("list<float>", [-0.0, 0.5], ["-0.0", "0.5"]),  # real[]: the sign of zero survives
    ("map<text, int>", OrderedMapSerializedKey(None, 0), []),
    ("map<text, int>", {"z": -1, "k": 1}, [["k", 1], ["z", -1]]),
    ("frozen<map<int, text>>", {2: "two", 1: "one"}, [[1, "one"], [2, "two"]]),
    ("map<uuid, blob>", {uuid.UUID(U): b"\x01"}, [[U, "0x01"]]),
    ("tuple<int, text, double>", (7, "seven", 7.5), [7, "seven", "7.5"]),
    ("tuple<int, text, double>", (None, None, -0.0), [None, None, "0.0"]),  # jsonb: zero is unsigned
    ("frozen<list<frozen<list<int>>>>", [[1, 2], [3]], [[1, 2], [3]]),
    ("frozen<list<frozen<set<int>>>>", [SortedSet([2, 1])], [[1, 2]]),
    ("text", None, None),
    ("list<int>", None, None),
]


@pytest.mark.parametrize(("cql", "value", "expected"), CASSANDRA)
def test_cassandra_value_canonical(cql: str, value: object, expected: object) -> None:
    assert canonical_cassandra(parse_cql_type(cql), value) == expected


def test_udt_named_tuple_is_an_object_by_field() -> None:
    t = parse_cql_type("frozen<address>", {"address": [("street", "text"), ("zip", "int")]})
    address = namedtuple("address", ["street", "zip"])
    assert canonical_cassandra(t, address("Main", None)) == {"street": "Main", "zip": None}
    assert canonical_json(t, {"street": "Main", "zip": None}) == {"street": "Main", "zip": None}
    assert canonical_json(t, {"zip": None, "street": "Main"}).startswith("not the jsonb encoding of udt")
    # written before the type gained "zip": the missing trailing field reads as null, as in Cassandra
    assert canonical_json(t, {"street": "Main"}) == {"street": "Main", "zip": None}
    assert canonical_json(t, {"zip": 1}).startswith("not the jsonb encoding of udt")


def test_an_unknown_driver_type_is_refused() -> None:
    with pytest.raises(TypeError, match="no canonical form for a object"):
        canonical_cassandra(parse_cql_type("text"), object())


UTC2 = ZoneInfo("Europe/Paris")

# (CQL type, value as psycopg returns it, canonical form)
POSTGRES: list[tuple[str, object, object]] = [
    ("text", "x", "x"),
    ("smallint", -32768, -32768),
    (
        "varint",
        Decimal("-10000000000000000000000000000000000000007"),
        -10000000000000000000000000000000000000007,
    ),
    ("varint", Decimal("5.5"), "5.5"),  # a fraction in a varint mirror shows as such
    ("decimal", Decimal("1.10"), "1.10"),
    ("decimal", Decimal("1.1"), "1.1"),
    ("decimal", Decimal("0.000001"), "0.000001"),
    ("float", 0.1, "0.1"),
    ("float", 3.4028235e38, "3.4028235e+38"),
    ("float", -0.0, "-0.0"),
    ("float", math.nan, "NaN"),
    ("double", -1.7976931348623157e308, "-1.7976931348623157e+308"),
    ("boolean", False, False),
    ("blob", b"\x00\xff\x10", "0x00ff10"),
    ("blob", memoryview(b"\x01"), "0x01"),
    ("uuid", uuid.UUID(U), U),
    ("inet", ipaddress.IPv6Address("2001:db8::1"), "2001:db8::1"),
    ("inet", ipaddress.IPv4Address("1.2.3.4"), "1.2.3.4"),
    ("inet", ipaddress.IPv4Interface("1.2.3.4/32"), "1.2.3.4"),
    ("inet", ipaddress.IPv4Interface("1.2.3.0/24"), "1.2.3.0/24"),
    ("date", dt.date(1, 1, 1), "0001-01-01"),
    ("time", dt.time(23, 59, 59, 999999), "23:59:59.999999"),
    (
        "timestamp",
        dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC),
        "1969-12-31T23:59:59.999000Z",
    ),
    ("timestamp", dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC2), "2026-06-01T10:00:00.000000Z"),
    ("timestamp", dt.datetime(2026, 6, 1, 12, 0), "2026-06-01T12:00:00 without time zone"),
    ("duration", dt.timedelta(days=3, seconds=1, microseconds=500000), "259201.500000s"),
    ("duration", -dt.timedelta(days=32, microseconds=1), "-2764800.000001s"),
    ("list<int>", [3, 1, 2], [3, 1, 2]),
    ("set<text>", ["b", "a"], ["a", "b"]),
    ("frozen<list<text>>", [], []),
    ("list<float>", [-0.0, 0.5], ["-0.0", "0.5"]),
    ("list<timestamp>", [dt.datetime(1970, 1, 1, tzinfo=dt.UTC)], ["1970-01-01T00:00:00.000000Z"]),
    # jsonb columns: psycopg hands over the parsed document
    ("map<text, int>", {"z": -1, "k": 1}, [["k", 1], ["z", -1]]),
    ("frozen<map<int, text>>", [[2, "two"], [1, "one"]], [[1, "one"], [2, "two"]]),
    ("frozen<map<int, text>>", {"1": "one"}, "not the jsonb encoding of map: {'1': 'one'}"),
    ("tuple<int, text, double>", [7, "seven", 7.5], [7, "seven", "7.5"]),
    ("tuple<int, text, double>", [None, None, 0.0], [None, None, "0.0"]),
    ("frozen<list<frozen<list<int>>>>", [[1, 2], [3]], [[1, 2], [3]]),
    ("frozen<list<frozen<list<int>>>>", [], []),
]


@pytest.mark.parametrize(("cql", "value", "expected"), POSTGRES)
def test_postgres_value_canonical(cql: str, value: object, expected: object) -> None:
    assert canonical_postgres(parse_cql_type(cql), value) == expected


# (CQL type, a value inside a jsonb document, canonical form): the documented encoding, and departures
JSONB: list[tuple[str, object, object]] = [
    ("bigint", 9007199254740991, 9007199254740991),
    ("bigint", "9007199254740992", 9007199254740992),
    ("bigint", "12", "not the jsonb encoding of bigint: '12'"),
    ("varint", 9007199254740992, "not the jsonb encoding of varint: 9007199254740992"),
    ("decimal", "1.10", "1.10"),
    ("decimal", "1.1E+1", "not the jsonb encoding of decimal: '1.1E+1'"),
    ("decimal", 1.1, "not the jsonb encoding of decimal: 1.1"),
    ("float", 0.1, "0.1"),
    ("double", "NaN", "NaN"),
    ("double", "-Infinity", "-Infinity"),
    ("double", 7, "7.0"),
    ("boolean", True, True),
    ("boolean", 1, "not the jsonb encoding of boolean: 1"),
    ("blob", "AP8Q", "0x00ff10"),
    ("blob", "AP8Q!", "not the jsonb encoding of blob: 'AP8Q!'"),
    ("uuid", U, U),
    ("uuid", U.upper(), f"not the jsonb encoding of uuid: '{U.upper()}'"),
    ("inet", "::ffff:1.2.3.4", "1.2.3.4"),
    ("date", "0001-01-01", "0001-01-01"),
    ("time", "00:00:00.000001", "00:00:00.000001"),
    ("time", "00:00:00", "not the jsonb encoding of time: '00:00:00'"),
    ("timestamp", "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999000Z"),
    (
        "timestamp",
        "1969-12-31T23:59:59.999",
        "not the jsonb encoding of timestamp: '1969-12-31T23:59:59.999'",
    ),
    ("duration", "P3DT1.500000S", "259201.500000s"),
    ("duration", "-P32DT0.000001S", "-2764800.000001s"),
    ("duration", "P3D", "not the jsonb encoding of duration: 'P3D'"),
    ("text", 5, "not the jsonb encoding of text: 5"),
    ("set<int>", [9, 10], [10, 9]),
    ("tuple<int, int>", [1], "not the jsonb encoding of tuple: [1]"),
]


@pytest.mark.parametrize(("cql", "value", "expected"), JSONB)
def test_jsonb_value_canonical(cql: str, value: object, expected: object) -> None:
    assert canonical_json(parse_cql_type(cql), value) == expected


@pytest.mark.parametrize(
    ("cql", "jsonb"),
    [
        ("text", False),
        ("duration", False),
        ("list<int>", False),
        ("frozen<set<text>>", False),
        ("vector<float, 3>", False),
        ("vector<int, 3>", True),
        ("map<text, int>", True),
        ("tuple<int, text>", True),
        ("frozen<list<frozen<list<int>>>>", True),
    ],
)
def test_stored_as_jsonb_follows_the_documented_mapping(cql: str, jsonb: bool) -> None:
    assert stored_as_jsonb(parse_cql_type(cql)) is jsonb


def test_the_shared_mistakes_are_caught() -> None:
    """What the old comparison (the sink's own converters on the Cassandra side) could not see."""
    assert canonical_cassandra(parse_cql_type("decimal"), Decimal("1.10")) != canonical_postgres(
        parse_cql_type("decimal"), Decimal("1.1")
    )
    assert canonical_cassandra(parse_cql_type("frozen<map<int, text>>"), {1: "one"}) != canonical_postgres(
        parse_cql_type("frozen<map<int, text>>"), {"1": "one"}
    )
    assert canonical_cassandra(parse_cql_type("float"), -0.0) != canonical_postgres(
        parse_cql_type("float"), 0.0
    )


def schema() -> Any:
    return cql_table("ks", "t", {"p": "int"}, {"c": "frozen<list<int>>"}, {"v": "decimal", "s": "set<int>"})


def test_diff_rows_by_canonical_key() -> None:
    key_a, key_b, key_c = (1, (1, 2)), (1, ()), (2, (3,))
    cassandra: dict[Key, Row] = {
        key_a: {"p": 1, "c": [1, 2], "v": "1.10", "s": [1, 2]},
        key_b: {"p": 1, "c": [], "v": None, "s": None},
    }
    postgres: dict[Key, Row] = {
        key_a: {"p": 1, "c": [1, 2], "v": "1.1", "s": [1, 2]},
        key_c: {"p": 2, "c": [3], "v": None, "s": None},
    }
    diff = diff_rows("ks.t", schema(), cassandra, postgres)
    assert diff == TableDiff(
        "ks.t",
        cassandra_rows=2,
        postgres_rows=2,
        missing=[key_b],
        extra=[key_c],
        different={key_a: {"v": ("1.10", "1.1")}},
    )
    assert diff.summary() == "ks.t: cassandra=2 postgres=2 missing=1 extra=1 different=1 DIFFERENT"
    same = diff_rows("ks.t", schema(), cassandra, cassandra)
    assert same.equal
    assert same.summary() == "ks.t: cassandra=2 postgres=2 missing=0 extra=0 different=0 EQUAL"


class FakeSession:
    def __init__(self, rows: list[tuple[object, ...]]) -> None:
        self.rows = rows
        self.queries: list[str] = []

    def execute(self, query: str) -> list[tuple[object, ...]]:
        self.queries.append(query)
        return self.rows


def test_cassandra_rows_are_canonical_and_keyed() -> None:
    session = FakeSession([(1, [1, 2], Decimal("1.10"), SortedSet([2, 1]))])
    assert cassandra_rows(session, schema()) == {(1, (1, 2)): {"p": 1, "c": [1, 2], "v": "1.10", "s": [1, 2]}}
    assert session.queries == ["SELECT p, c, v, s FROM ks.t"]

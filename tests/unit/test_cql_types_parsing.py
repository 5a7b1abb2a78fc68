"""Unit tests for models.cql_types.parsing: CqlType text parsing and formatting."""

from __future__ import annotations

import pytest

from models.cql_types import (
    CqlType,
    UnsupportedType,
    format_cql_type,
    parse_cql_type,
)
from tests.cql_values import ADDR


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

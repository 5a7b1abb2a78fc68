"""Unit tests for models.cql_types.type_map: the PostgreSQL type of each CQL type, and multi-cell types."""

from __future__ import annotations

import pytest

from models.cql_types import (
    CqlType,
    is_multicell,
    parse_cql_type,
    pg_type,
)
from models.cql_types.parsing import SCALAR_TYPES
from tests.cql_values import ADDR


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


def test_every_scalar_has_a_native_pg_type() -> None:
    for name in SCALAR_TYPES:
        pg = pg_type(CqlType(name))
        assert pg != "jsonb"
        assert not pg.endswith("[]")

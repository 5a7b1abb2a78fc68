"""The PostgreSQL column type of each CQL type (:func:`pg_type`), and which types are stored cell by cell."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from models.cql_types.parsing import CqlType, is_scalar

_SCALAR_PG: Final[Mapping[str, str]] = {
    "text": "text",
    "ascii": "text",
    "tinyint": "smallint",
    "smallint": "smallint",
    "int": "integer",
    "bigint": "bigint",
    "counter": "bigint",
    "varint": "numeric",
    "decimal": "numeric",
    "float": "real",
    "double": "double precision",
    "boolean": "boolean",
    "blob": "bytea",
    "date": "date",
    "time": "time",
    "timestamp": "timestamptz",
    "duration": "interval",
    "uuid": "uuid",
    "timeuuid": "uuid",
    "inet": "inet",
}


def is_array(t: CqlType) -> bool:
    """True when the PostgreSQL type is an array of a scalar (list/set of scalars, vector<float>)."""
    if t.name in ("list", "set"):
        return is_scalar(t.params[0])
    return t.name == "vector" and t.params[0].name == "float"


def pg_type(t: CqlType) -> str:
    """PostgreSQL column type: scalars per the table, ``<scalar>[]`` for list/set of scalars and
    ``vector<float, n>`` (``real[]``), ``jsonb`` for everything else (``docs/type-mapping.md``)."""
    if is_scalar(t):
        return _SCALAR_PG[t.name]
    if is_array(t):
        return f"{_SCALAR_PG[t.params[0].name]}[]"
    return "jsonb"


def is_multicell(t: CqlType) -> bool:
    """Non-frozen list/set/map/UDT: stored cell by cell, so events only carry the cells written."""
    return t.name in ("list", "set", "map", "udt") and not t.frozen

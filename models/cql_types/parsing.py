"""The parsed CQL type (:class:`CqlType`) and its text form: :func:`parse_cql_type`, :func:`format_cql_type`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, TypeAlias


class UnsupportedType(ValueError):
    """A CQL type this package does not know (custom types, unknown UDT names, malformed text)."""


@dataclass(frozen=True)
class CqlType:
    """A parsed CQL type.

    ``name`` is a native type name (``varchar`` is normalised to ``text``) or one of ``list``, ``set``,
    ``map``, ``tuple``, ``vector``, ``udt``.  Types nested in another type, and tuples, are always frozen.
    """

    name: str
    params: tuple[CqlType, ...] = ()
    frozen: bool = False
    udt_name: str | None = None
    udt_fields: tuple[tuple[str, CqlType], ...] = ()
    dimension: int | None = None


Native: TypeAlias = Any
"""Canonical Python form of a CQL value before the PostgreSQL step: scalars as returned by ``from_*``,
list/set/vector as list (sets sorted), map as a sorted list of (key, value) tuples, tuple/UDT as tuple."""

SCALAR_TYPES: Final = frozenset(
    {
        *("text", "ascii", "tinyint", "smallint", "int", "bigint", "counter", "varint", "decimal"),
        *("float", "double", "boolean", "blob", "date", "time", "timestamp", "duration"),
        *("uuid", "timeuuid", "inet"),
    }
)
"""The native (non-collection) CQL type names, after alias normalisation."""

NO_UDTS: Final[Mapping[str, Sequence[tuple[str, str]]]] = {}

_ALIASES: Final = {"varchar": "text"}
_COLLECTIONS: Final = frozenset({"list", "set", "map"})
_ARITY: Final[Mapping[str, int]] = {"list": 1, "set": 1, "map": 2}
_MAX_NESTING: Final = 32
_TOKEN_RE: Final = re.compile(r"""\s*(?:([<>,])|("(?:[^"]|"")*")|('(?:[^']|'')*')|([A-Za-z0-9_.]+))""")


def is_scalar(t: CqlType) -> bool:
    """A native type (not a collection, tuple, UDT or vector)."""
    return t.name in SCALAR_TYPES


def components(t: CqlType) -> tuple[CqlType, ...]:
    """The component types of a tuple, or the field types of a UDT in declaration order."""
    return t.params if t.name == "tuple" else tuple(ft for _, ft in t.udt_fields)


def _tokenize(text: str) -> list[str]:
    """Split CQL type text into ``<``, ``>``, ``,``, quoted identifiers/strings and words."""
    tokens: list[str] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN_RE.match(stripped, pos)
        if match is None or match.end() == pos:
            raise UnsupportedType(f"cannot parse CQL type {text!r} at offset {pos}")
        tokens.append(next(group for group in match.groups() if group is not None))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive-descent parser over the tokens of one CQL type."""

    def __init__(self, text: str, udts: Mapping[str, Sequence[tuple[str, str]]], depth: int) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.udts = udts
        self.depth = depth

    def fail(self, reason: str) -> UnsupportedType:
        return UnsupportedType(f"unsupported CQL type {self.text!r}: {reason}")

    def take(self) -> str:
        if self.pos >= len(self.tokens):
            raise self.fail("unexpected end")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, token: str) -> None:
        got = self.take()
        if got != token:
            raise self.fail(f"expected {token!r}, got {got!r}")

    def parse_all(self) -> CqlType:
        result = self.parse_type(nested=False)
        if self.pos != len(self.tokens):
            raise self.fail(f"unexpected {self.tokens[self.pos]!r}")
        return result

    def parse_args(self) -> list[CqlType]:
        self.expect("<")
        args = [self.parse_type(nested=True)]
        while (sep := self.take()) == ",":
            args.append(self.parse_type(nested=True))
        if sep != ">":
            raise self.fail(f"expected ',' or '>', got {sep!r}")
        return args

    def parse_type(self, nested: bool) -> CqlType:
        word = self.take()
        if word.startswith("'"):
            raise self.fail("custom (Java class) types are not supported")
        lowered = word.lower()
        if lowered == "frozen":
            (inner,) = self.parse_frozen_arg()
            return replace(inner, frozen=True)
        if lowered in _COLLECTIONS:
            return self.parse_collection(lowered, nested)
        if lowered == "tuple":
            return CqlType("tuple", tuple(self.parse_args()), frozen=True)
        if lowered == "vector":
            return self.parse_vector(nested)
        if not word.startswith('"') and (_ALIASES.get(lowered, lowered) in SCALAR_TYPES):
            return CqlType(_ALIASES.get(lowered, lowered))
        return self.parse_udt(word, nested)

    def parse_frozen_arg(self) -> list[CqlType]:
        args = self.parse_args()
        if len(args) != 1:
            raise self.fail("frozen<> takes one type")
        return args

    def parse_collection(self, name: str, nested: bool) -> CqlType:
        args = self.parse_args()
        if len(args) != _ARITY[name]:
            raise self.fail(f"{name}<> takes {_ARITY[name]} type(s)")
        return CqlType(name, tuple(args), frozen=nested)

    def parse_vector(self, nested: bool) -> CqlType:
        self.expect("<")
        element = self.parse_type(nested=True)
        self.expect(",")
        size = self.take()
        self.expect(">")
        if not size.isdigit() or int(size) < 1:
            raise self.fail(f"bad vector dimension {size!r}")
        return CqlType("vector", (element,), frozen=nested, dimension=int(size))

    def parse_udt(self, word: str, nested: bool) -> CqlType:
        name = _unquote(word.rsplit(".", 1)[-1] if not word.startswith('"') else word)
        fields = self.udts.get(name)
        if fields is None and not word.startswith('"'):
            fields = self.udts.get(name.lower())
        if fields is None:
            raise self.fail(f"unknown type {word!r} (not a native type nor a UDT of the keyspace)")
        if self.depth >= _MAX_NESTING:
            raise self.fail("UDT nesting too deep (recursive definition?)")
        parsed = tuple(
            (field, replace(_Parser(text, self.udts, self.depth + 1).parse_all(), frozen=True))
            for field, text in fields
        )
        return CqlType("udt", frozen=nested, udt_name=name, udt_fields=parsed)


def _unquote(word: str) -> str:
    """``"My""Type"`` -> ``My"Type``; unquoted words unchanged."""
    if len(word) >= 2 and word[0] == word[-1] == '"':
        return word[1:-1].replace('""', '"')
    return word


def parse_cql_type(text: str, udts: Mapping[str, Sequence[tuple[str, str]]] = NO_UDTS) -> CqlType:
    """Parse a ``system_schema.columns.type`` string (as ``ColumnMetadata.cql_type`` shows it).

    ``udts`` maps each UDT name of the keyspace to its ``[(field name, field type text)]`` (from
    ``KeyspaceMetadata.user_types[name].field_names / field_types``).  Raises :class:`UnsupportedType`.
    """
    return _Parser(text, udts, 0).parse_all()


def format_cql_type(t: CqlType) -> str:
    """CQL text of a parsed type, e.g. ``frozen<map<text, list<int>>>`` (UDTs by name)."""
    if t.name == "udt":
        body = t.udt_name or "?"
    elif t.name == "vector":
        body = f"vector<{format_cql_type(t.params[0])}, {t.dimension}>"
    elif t.params:
        body = f"{t.name}<{', '.join(format_cql_type(p) for p in t.params)}>"
    else:
        return t.name
    return f"frozen<{body}>" if t.frozen and t.name != "vector" else body

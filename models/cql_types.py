"""CQL column types: parsing, the PostgreSQL type of each, and value conversion.

Column types always come from Cassandra's schema (``ColumnMetadata.cql_type`` of cassandra-driver, e.g.
``frozen<map<text, list<int>>>``), never from the JSON of an event.  :func:`parse_cql_type` turns that text
into a :class:`CqlType`; :func:`pg_type` names the PostgreSQL column type; :func:`from_debezium` and
:func:`from_driver` turn a Debezium event value or a cassandra-driver result value into the *same* Python
value, one psycopg 3 adapts to that PostgreSQL type, so values read from either side compare equal.

How Debezium represents each CQL type
-------------------------------------
Debezium Cassandra agent ``debezium-connector-cassandra-5``; the type code is identical from 3.4.1.Final to
3.6.1.Final (``core/.../transforms/type/deserializer/*``, ``cassandra-5/.../Cassandra5TypeProvider``).  The
value is ``after.<column>.value``.  "live": checked against the running local stack (agent 3.4.1.Final,
``JsonConverter``, ``schemas.enable=false``, default decimal/varint handling modes); "src": source only.

=========  ===========================================  ================  =========================  ====
CQL        Debezium JSON value (Avro: fastavro value)   PostgreSQL        Python value (from_*)      seen
=========  ===========================================  ================  =========================  ====
text       string (``varchar`` is ``text``)             text              str                        live
ascii      string                                       text              str                        live
tinyint    number (int8)                                smallint          int, -128..127             live
smallint   number (int16)                               smallint          int                        live
int        number (int32)                               integer           int                        live
bigint     number (int64; 2^53+1 arrives exactly)       bigint            int                        live
counter    number (int64)                               bigint            int                        src
varint     mode LONG (default): number holding the low  numeric           int (exact)                live
           64 bits -- silently wrapped; STRING: decimal
           string; PRECISE: base64 two's complement
           (Avro: Decimal, scale 0)
decimal    mode DOUBLE (default): number rounded to a   numeric           decimal.Decimal (exact,    live
           double -- lossy, refused unless                                keeps the scale)
           ``DebeziumModes(decimal="double")``; STRING:
           plain string; PRECISE: {"scale": int,
           "value": base64 unscaled two's complement}
float      number; NaN/+-inf as the strings "NaN",      real              float: float32, shortest   live
           "Infinity", "-Infinity" (Jackson)                              decimal form (0.1f -> 0.1)
double     number; NaN/+-inf as for float               double precision  float                      live
boolean    true/false                                   boolean           bool                       live
blob       base64 string (Avro: bytes)                  bytea             bytes                      live
date       number: days since 1970-01-01 (int32)        date              datetime.date              live
time       number: nanoseconds since midnight (int64)   time              datetime.time, nanos       live
                                                                          truncated to micros
timestamp  number: milliseconds since the epoch         timestamptz       datetime, tzinfo=UTC       live
           (int64, negative before 1970)
duration   number: int64 nanoseconds                    interval          datetime.timedelta of the  live
           ``(months*30 + days) * 86400 * 10^9 + nanos``                  Debezium nanos, truncated
           (io.debezium.time.NanoDuration, a month is                     toward zero to micros
           30 days; months/days are not recoverable)
uuid       string, lower case                           uuid              uuid.UUID                  live
timeuuid   string                                       uuid              uuid.UUID (version 1)      live
inet       Java InetAddress.toString(): "/10.0.0.1",    inet              IPv4Address/IPv6Address;   live
           "/0:0:0:0:0:0:0:1"; IPv4-mapped IPv6 arrives                   ::ffff:a.b.c.d -> IPv4
           as IPv4 ("/1.2.3.4")
list<s>    JSON array in list order                     <pg of s>[]       list                       live
set<s>     JSON array, *arbitrary* (HashSet) order      <pg of s>[]       list, Cassandra's order    live
map<k,v>   JSON object when k's Connect schema is a     jsonb             see "jsonb encoding"       live
           string (text, ascii, uuid, timeuuid, inet
           as "/1.2.3.4"), else an array of [key,
           value] pairs (Avro: map, or array of
           {"key", "value"} records); arbitrary order
tuple      object {"field1": .., "field2": .., ...}     jsonb             see "jsonb encoding"       live
UDT        object by field name                         jsonb             see "jsonb encoding"       src
nested     inner collection elements are emitted raw    jsonb             see "jsonb encoding"       live
           (right for list<frozen<list<int>>>, see                                                   (int)
           "Unresolved")
vector     unsupported by the agent (no deserializer)   real[] (float),   list[float], dimension     src
                                                        else jsonb        checked
=========  ===========================================  ================  =========================  ====

Multi-cell values (non-frozen list/set/map/UDT, :func:`is_multicell`) in commit-log events carry only the
cells written by that mutation: ``l = l + [9]`` gives ``[9]``, ``s = s - {'a'}`` gives ``["a"]`` (a removal
looks like an addition), ``DELETE m['a']`` gives ``{"a": null}``, a full overwrite gives the new cells only.
Treat them as hints and re-read the row.  An empty non-frozen collection *is* null in Cassandra, so both
``from_*`` return None for it.  Snapshot events (``source.snapshot = "true"``) carry the whole value.

jsonb encoding (:func:`to_json_compatible`)
--------------------------------------------
Deterministic, so equal Cassandra values give equal jsonb:

* text/ascii: string.  tinyint/smallint/int: number.  bigint/counter/varint: number when
  ``|v| <= 2^53 - 1``, else a decimal string (so JavaScript readers lose nothing).
* decimal: string in plain notation, scale kept (``"1.10"``, ``"0.000001"``; like Java ``toPlainString``).
* float/double: number; NaN and infinities as ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (JSON has none).
* boolean: true/false.  blob: standard base64 with padding.  uuid/timeuuid: lower-case hyphenated string.
* inet: ``str(ipaddress)`` (compressed IPv6).  date: ``"YYYY-MM-DD"``.  time: ``"HH:MM:SS.ffffff"``.
* timestamp: ``"YYYY-MM-DDTHH:MM:SS.fffZ"`` (UTC, milliseconds).
* duration: ``"[-]P<days>DT<seconds>.<micros:06>S"`` of the timedelta (days of 24 h, seconds < 86400).
* list/vector: array.  set: array in Cassandra's order for the element type.
* map: object when the key type is text or ascii, else an array of ``[key, value]`` pairs; both in
  Cassandra's key order.
* tuple: array, one item per component (null for a null component).
* UDT: object with every declared field in declaration order (null for a null field).

"Cassandra's order" is the comparator of the element type: UTF-8 bytes for text, signed numbers, Float.compare
for float/double (-0.0 < 0.0 < NaN), unsigned bytes for blob/inet, UUIDType / TimeUUIDType rules for uuids,
element-wise then shorter-first for frozen collections, tuples and UDTs.

Unresolved (see also the report): decimal/varint need ``decimal.handling.mode=precise|string`` and
``varint.handling.mode=string|precise`` on the agent (defaults lose data); duration months/days collapse in
Debezium; inner values of a collection nested in a collection are emitted unformatted by Debezium (a
nested ``set`` or a nested logical type -- timestamp, uuid, decimal... -- fails or is raw), so only nested
collections of plain types (int, text, ...) were verified; snapshot events of ``map<.., blob>`` carried a
corrupt blob (the whole serialized map) while commit-log events were right; a UDT column table did not
stream (the agent logged ``Unknown type`` for the table); vectors are unsupported by the agent.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import json
import math
import re
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, TypeAlias

from cassandra import cqltypes
from cassandra.util import Duration as DriverDuration

from models.errors import ValueMappingError

__all__ = [
    "CqlType",
    "DebeziumModes",
    "JsonbValue",
    "UnsupportedType",
    "cell_order_bytes",
    "debezium_converter",
    "format_cql_type",
    "from_debezium",
    "from_driver",
    "is_multicell",
    "parse_cql_type",
    "pg_type",
    "to_json_compatible",
]


class UnsupportedType(ValueError):
    """A CQL type this module does not know (custom types, unknown UDT names, malformed text)."""


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


@dataclass(frozen=True)
class DebeziumModes:
    """How the agent was configured to encode decimal and varint values.

    ``auto`` accepts every unambiguous encoding: decimal as a PRECISE struct, a STRING or an Avro Decimal
    (never a float -- DOUBLE mode has already lost digits); varint as a number, a decimal string, or else a
    base64 string (PRECISE with JsonConverter's default ``decimal.format=BASE64``).  A digit-only string is
    read as decimal in ``auto``; name the mode explicitly if the agent runs PRECISE with base64.
    """

    decimal: Literal["auto", "precise", "string", "double"] = "auto"
    varint: Literal["auto", "long", "precise", "string"] = "auto"


@dataclass(frozen=True)
class JsonbValue:
    """The document of a jsonb column (``obj``: its :func:`to_json_compatible` encoding), compared by content.

    Pure: the sink wraps ``obj`` for PostgreSQL (``app.sink.store``)."""

    obj: Any


Native: TypeAlias = Any
"""Canonical Python form of a CQL value before the PostgreSQL step: scalars as returned by ``from_*``,
list/set/vector as list (sets sorted), map as a sorted list of (key, value) tuples, tuple/UDT as tuple."""

_DEFAULT_MODES: Final = DebeziumModes()
_NO_UDTS: Final[Mapping[str, Sequence[tuple[str, str]]]] = {}
_UTC: Final = dt.UTC
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_DATE: Final = dt.date(1970, 1, 1)
_NANOS_PER_DAY: Final = 86_400 * 10**9
_MAX_SAFE_JSON_INT: Final = 2**53 - 1
_MAX_NESTING: Final = 32

_ALIASES: Final = {"varchar": "text"}
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
_INT_BITS: Final[Mapping[str, int]] = {"tinyint": 8, "smallint": 16, "int": 32, "bigint": 64, "counter": 64}
_COLLECTIONS: Final = frozenset({"list", "set", "map"})
_ARITY: Final[Mapping[str, int]] = {"list": 1, "set": 1, "map": 2}


# --------------------------------------------------------------------------------------------- parsing

_TOKEN_RE: Final = re.compile(r"""\s*(?:([<>,])|("(?:[^"]|"")*")|('(?:[^']|'')*')|([A-Za-z0-9_.]+))""")


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
        if not word.startswith('"') and (_ALIASES.get(lowered, lowered) in _SCALAR_PG):
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


def parse_cql_type(text: str, udts: Mapping[str, Sequence[tuple[str, str]]] = _NO_UDTS) -> CqlType:
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


# --------------------------------------------------------------------------------------------- type map


def _is_scalar(t: CqlType) -> bool:
    return t.name in _SCALAR_PG


def _is_array(t: CqlType) -> bool:
    """True when the PostgreSQL type is an array of a scalar (list/set of scalars, vector<float>)."""
    if t.name in ("list", "set"):
        return _is_scalar(t.params[0])
    return t.name == "vector" and t.params[0].name == "float"


def pg_type(t: CqlType) -> str:
    """PostgreSQL column type: scalars per the table, ``<scalar>[]`` for list/set of scalars and
    ``vector<float, n>`` (``real[]``), ``jsonb`` for everything else."""
    if _is_scalar(t):
        return _SCALAR_PG[t.name]
    if _is_array(t):
        return f"{_SCALAR_PG[t.params[0].name]}[]"
    return "jsonb"


def is_multicell(t: CqlType) -> bool:
    """Non-frozen list/set/map/UDT: stored cell by cell, so events only carry the cells written."""
    return t.name in ("list", "set", "map", "udt") and not t.frozen


# --------------------------------------------------------------------------------------------- errors


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _bad(t: CqlType, value: object, reason: str) -> ValueError:
    return ValueError(f"{format_cql_type(t)} value {_short(value)}: {reason}")


def _wrap(t: CqlType, raw: object, convert: Callable[[], object]) -> object:
    try:
        return convert()
    except ValueMappingError:
        raise
    except (ValueError, TypeError, OverflowError, ArithmeticError) as error:
        raise ValueMappingError(f"cannot map {_short(raw)} to CQL {format_cql_type(t)}: {error}") from error


# --------------------------------------------------------------------------------------------- scalars


def _check_int(t: CqlType, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(t, value, "expected an integer")
    bits = _INT_BITS.get(t.name)
    if bits is not None and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise _bad(t, value, f"out of range for a {bits}-bit integer")
    return value


def _text(t: CqlType, value: object) -> str:
    if not isinstance(value, str):
        raise _bad(t, value, "expected a string")
    if t.name == "ascii" and not value.isascii():
        raise _bad(t, value, "non-ASCII character in ascii")
    return value


_FLOAT_WORDS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _float(t: CqlType, value: object) -> float:
    """Numbers, or Jackson's "NaN"/"Infinity"/"-Infinity"; float values are canonicalised to float32."""
    if isinstance(value, str) and value in _FLOAT_WORDS:
        number = _FLOAT_WORDS[value]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise _bad(t, value, "expected a number or NaN/Infinity/-Infinity")
    if t.name == "float":
        try:
            return _float32_canonical(number)
        except OverflowError:
            raise _bad(t, value, "out of range for float32") from None
    return number


def _to_float32(number: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", number))[0])


def _float32_canonical(number: float) -> float:
    """Round to float32, then return the shortest decimal that rounds back to the same float32, as a
    double: Jackson writes ``0.1f`` as ``0.1``, the driver reads ``0.10000000149011612``, PostgreSQL prints
    ``real`` as ``0.1``; all become ``0.1``.  Raises OverflowError beyond the float32 range."""
    single = _to_float32(number)
    if not math.isfinite(single):
        return single
    for digits in range(1, 10):
        candidate = float(f"{single:.{digits}g}")
        try:
            if _to_float32(candidate) == single:
                return candidate
        except OverflowError:
            continue
    return single


def _bool(t: CqlType, value: object) -> bool:
    if not isinstance(value, bool):
        raise _bad(t, value, "expected true/false")
    return value


def _bytes_value(t: CqlType, value: object) -> bytes:
    """base64 text (JSON) or bytes (Avro / driver)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise _bad(t, value, "invalid base64") from None
    raise _bad(t, value, "expected base64 text or bytes")


def _date_from_days(t: CqlType, days: object) -> dt.date:
    days = _check_int(CqlType("int"), days)
    try:
        return _EPOCH_DATE + dt.timedelta(days=days)
    except OverflowError:
        raise _bad(t, days, "date outside years 1..9999 (not representable in Python)") from None


def _time_from_nanos(t: CqlType, nanos: object) -> dt.time:
    """Nanoseconds since midnight -> time; the sub-microsecond digits are truncated."""
    nanos = _check_int(CqlType("bigint"), nanos)
    if not 0 <= nanos < _NANOS_PER_DAY:
        raise _bad(t, nanos, "time must be in [0, 86400 s)")
    micros = nanos // 1000
    seconds, micro = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    return dt.time(minutes // 60, minutes % 60, second, micro)


def _timestamp_from_millis(t: CqlType, millis: object) -> dt.datetime:
    millis = _check_int(CqlType("bigint"), millis)
    try:
        return _EPOCH + dt.timedelta(milliseconds=millis)
    except OverflowError:
        raise _bad(t, millis, "timestamp outside years 1..9999 (not representable in Python)") from None


def _wrap_int64(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


def _duration_from_nanos(t: CqlType, nanos: object) -> dt.timedelta:
    """Debezium NanoDuration nanoseconds -> timedelta, truncated toward zero to microseconds."""
    nanos = _check_int(CqlType("bigint"), nanos)
    micros = abs(nanos) // 1000
    return dt.timedelta(microseconds=-micros if nanos < 0 else micros)


def _debezium_duration_nanos(months: int, days: int, nanos: int) -> int:
    """What io.debezium.time.NanoDuration.durationNanos(0, months, days, 0, 0, 0, nanos) yields (Java longs,
    ``ChronoUnit.MONTHS.getDuration().toDays()`` = 30)."""
    return _wrap_int64((months * 30 + days) * 86_400 * 10**9 + nanos)


def _uuid(t: CqlType, value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        result = value
    elif isinstance(value, str):
        try:
            result = uuid.UUID(value)
        except ValueError:
            raise _bad(t, value, "not a UUID") from None
    else:
        raise _bad(t, value, "expected a UUID string")
    if t.name == "timeuuid" and (result.int >> 76) & 0xF != 1:
        raise _bad(t, value, "timeuuid must be a version 1 UUID")
    return result


IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


def _inet(t: CqlType, value: object) -> IpAddress:
    """``"/1.2.3.4"`` or ``"host/1.2.3.4"`` (Java) or a bare address; IPv4-mapped IPv6 -> IPv4."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address: IpAddress = value
    elif isinstance(value, str):
        try:
            address = ipaddress.ip_address(value.rsplit("/", 1)[-1])
        except ValueError:
            raise _bad(t, value, "not an IP address") from None
    else:
        raise _bad(t, value, "expected an IP address string")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _decimal_checked(t: CqlType, value: Decimal) -> Decimal:
    if not value.is_finite():
        raise _bad(t, value, "decimal must be finite")
    return value


def _decimal_from_struct(t: CqlType, value: Mapping[str, object]) -> Decimal:
    """Debezium VariableScaleDecimal {"scale": s, "value": unscaled two's complement} -> exact Decimal."""
    scale = _check_int(CqlType("int"), value.get("scale"))
    unscaled = int.from_bytes(_bytes_value(t, value.get("value")), "big", signed=True)
    digits = tuple(int(d) for d in str(abs(unscaled)))
    return Decimal((1 if unscaled < 0 else 0, digits, -scale))


def _decimal_dbz(t: CqlType, value: object, modes: DebeziumModes) -> Decimal:
    mode = modes.decimal
    if isinstance(value, Mapping) and mode in ("auto", "precise"):
        return _decimal_from_struct(t, value)
    if isinstance(value, str) and mode in ("auto", "string"):
        try:
            return _decimal_checked(t, Decimal(value))
        except InvalidOperation:
            raise _bad(t, value, "not a decimal string") from None
    if isinstance(value, Decimal) and mode != "double":
        return _decimal_checked(t, value)
    if isinstance(value, int) and not isinstance(value, bool) and mode != "double":
        return Decimal(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and mode == "double":
        return _decimal_checked(t, Decimal(repr(float(value))))
    hint = (
        " (a float: set decimal.handling.mode=precise or string on the agent)"
        if isinstance(value, float)
        else ""
    )
    raise _bad(t, value, f"not a decimal encoding for mode {mode}{hint}")


def _varint_dbz(t: CqlType, value: object, modes: DebeziumModes) -> int:
    mode = modes.varint
    if isinstance(value, int) and not isinstance(value, bool) and mode in ("auto", "long", "precise"):
        return value
    if isinstance(value, Decimal) and mode in ("auto", "precise"):
        if value != value.to_integral_value():
            raise _bad(t, value, "varint must be integral")
        return int(value)
    if isinstance(value, str) and mode in ("auto", "string") and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if isinstance(value, (str, bytes)) and mode in ("auto", "precise"):
        return int.from_bytes(_bytes_value(t, value), "big", signed=True)
    raise _bad(t, value, f"not a varint encoding for mode {mode}")


def _scalar_dbz(t: CqlType, raw: object, modes: DebeziumModes) -> Native:
    """One Debezium scalar -> canonical Python value."""
    if t.name == "decimal":
        return _decimal_dbz(t, raw, modes)
    if t.name == "varint":
        return _varint_dbz(t, raw, modes)
    if t.name == "date":
        return _date_from_days(t, raw)
    if t.name == "time":
        return _time_from_nanos(t, raw)
    if t.name == "timestamp":
        return _timestamp_from_millis(t, raw)
    if t.name == "duration":
        return _duration_from_nanos(t, raw)
    return _COMMON_SCALARS[t.name](t, raw)


def _scalar_driver(t: CqlType, value: object) -> Native:
    """One cassandra-driver scalar -> canonical Python value."""
    handler = _DRIVER_SCALARS.get(t.name)
    if handler is not None:
        return handler(t, value)
    return _COMMON_SCALARS[t.name](t, value)


def _driver_decimal(t: CqlType, value: object) -> Decimal:
    if isinstance(value, Decimal):
        return _decimal_checked(t, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise _bad(t, value, "expected a Decimal")


def _driver_date(t: CqlType, value: object) -> dt.date:
    days = getattr(value, "days_from_epoch", None)
    if days is not None:
        return _date_from_days(t, days)
    if isinstance(value, dt.datetime):
        raise _bad(t, value, "expected a date, got a datetime")
    if isinstance(value, dt.date):
        return value
    return _date_from_days(t, value)


def _driver_time(t: CqlType, value: object) -> dt.time:
    nanos = getattr(value, "nanosecond_time", None)
    if nanos is not None:
        return _time_from_nanos(t, nanos)
    if isinstance(value, dt.time):
        return value.replace(tzinfo=None)
    return _time_from_nanos(t, value)


def _driver_timestamp(t: CqlType, value: object) -> dt.datetime:
    """Naive datetimes are UTC (the driver's convention); floored to milliseconds like Cassandra."""
    if isinstance(value, dt.datetime):
        aware = value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
        return aware - dt.timedelta(microseconds=aware.microsecond % 1000)
    return _timestamp_from_millis(t, value)


def _driver_duration(t: CqlType, value: object) -> dt.timedelta:
    """cassandra.util.Duration -> the same timedelta as the Debezium event (months = 30 days)."""
    if isinstance(value, DriverDuration):
        months, days, nanos = (_check_int(CqlType(n), getattr(value, a)) for n, a in _DURATION_PARTS)
        return _duration_from_nanos(t, _debezium_duration_nanos(months, days, nanos))
    if isinstance(value, dt.timedelta):
        return value
    return _duration_from_nanos(t, value)


_DURATION_PARTS: Final = (("int", "months"), ("int", "days"), ("bigint", "nanoseconds"))

_COMMON_SCALARS: Final[Mapping[str, Callable[[CqlType, object], Native]]] = {
    "text": _text,
    "ascii": _text,
    "tinyint": _check_int,
    "smallint": _check_int,
    "int": _check_int,
    "bigint": _check_int,
    "counter": _check_int,
    "float": _float,
    "double": _float,
    "boolean": _bool,
    "blob": _bytes_value,
    "uuid": _uuid,
    "timeuuid": _uuid,
    "inet": _inet,
}

_DRIVER_SCALARS: Final[Mapping[str, Callable[[CqlType, object], Native]]] = {
    "varint": lambda t, v: _check_int(t, v),
    "decimal": _driver_decimal,
    "date": _driver_date,
    "time": _driver_time,
    "timestamp": _driver_timestamp,
    "duration": _driver_duration,
}


# --------------------------------------------------------------------------------------------- ordering


def _uuid_key(t: CqlType, value: uuid.UUID) -> tuple[int, ...]:
    """UUIDType: version, then time (v1) or unsigned msb, then unsigned lsb; TimeUUIDType: time, then
    the lsb bytes compared as signed bytes."""
    msb, lsb = value.int >> 64, value.int & (2**64 - 1)
    reordered = ((msb & 0xFFFF) << 48) | (((msb >> 16) & 0xFFFF) << 32) | (msb >> 32)
    if t.name == "timeuuid":
        return (reordered, *(b - 256 if b > 127 else b for b in lsb.to_bytes(8, "big")))
    version = (msb >> 12) & 0xF
    return (version, reordered if version == 1 else msb, lsb)


def _float_key(value: float) -> tuple[bool, float, float]:
    """Java Float.compare / Double.compare: -0.0 < 0.0, NaN greatest."""
    if math.isnan(value):
        return (True, 0.0, 0.0)
    return (False, value, math.copysign(1.0, value))


def _order_key(t: CqlType, value: Native) -> tuple[Any, ...]:
    """Sort key reproducing Cassandra's comparator for ``t`` (None first)."""
    if value is None:
        return (0,)
    return (1, _raw_key(t, value))


def _raw_key(t: CqlType, value: Native) -> Any:
    name = t.name
    if name in ("text", "ascii"):
        return value.encode("utf-8")
    if name in ("float", "double"):
        return _float_key(value)
    if name in ("uuid", "timeuuid"):
        return _uuid_key(t, value)
    if name == "inet":
        return value.packed
    if name == "map":
        return tuple((_order_key(t.params[0], k), _order_key(t.params[1], v)) for k, v in value)
    if name in ("list", "set", "vector"):
        return tuple(_order_key(t.params[0], item) for item in value)
    if name in ("tuple", "udt"):
        return tuple(_order_key(sub, item) for sub, item in zip(_components(t), value, strict=True))
    return value


def _components(t: CqlType) -> tuple[CqlType, ...]:
    return t.params if t.name == "tuple" else tuple(ft for _, ft in t.udt_fields)


# --------------------------------------------------------------------------------------------- structure

_Scalar = Callable[[CqlType, object], Native]


def _to_native(t: CqlType, value: object, scalar: _Scalar, source: str) -> Native:
    """Walk ``value`` by the structure of ``t``; ``scalar`` converts leaves; ``source`` picks the
    container shapes accepted ('debezium' or 'driver')."""
    if value is None:
        return None
    if _is_scalar(t):
        return scalar(t, value)
    if t.name in ("list", "set", "vector"):
        items = [_to_native(t.params[0], item, scalar, source) for item in _sequence(t, value, source)]
        return _finish_sequence(t, items, value)
    if t.name == "map":
        pairs = [
            (_to_native(t.params[0], k, scalar, source), _to_native(t.params[1], v, scalar, source))
            for k, v in _map_items(t, value)
        ]
        return sorted(pairs, key=lambda kv: _order_key(t.params[0], kv[0]))
    return _struct_native(t, value, scalar, source)


def _sequence(t: CqlType, value: object, source: str) -> list[object]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _bad(t, value, "expected an array")
    if source == "debezium" and not isinstance(value, (list, tuple)):
        raise _bad(t, value, "expected an array")
    return list(value)


def _finish_sequence(t: CqlType, items: list[Native], original: object) -> list[Native]:
    if t.name == "set":
        return sorted(items, key=lambda item: _order_key(t.params[0], item))
    if t.name == "vector" and len(items) != t.dimension:
        raise _bad(t, original, f"vector needs {t.dimension} elements, got {len(items)}")
    return items


def _map_items(t: CqlType, value: object) -> list[tuple[object, object]]:
    """JSON object / Avro map / driver Mapping, or an array of [k, v] pairs / {"key", "value"} records."""
    if isinstance(value, Mapping):
        return list(value.items())
    if not isinstance(value, (list, tuple)):
        raise _bad(t, value, "expected an object or an array of [key, value] pairs")
    pairs: list[tuple[object, object]] = []
    for entry in value:
        if isinstance(entry, Mapping) and set(entry) == {"key", "value"}:
            pairs.append((entry["key"], entry["value"]))
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            pairs.append((entry[0], entry[1]))
        else:
            raise _bad(t, entry, "map entry must be [key, value]")
    return pairs


def _struct_native(t: CqlType, value: object, scalar: _Scalar, source: str) -> tuple[Native, ...]:
    """Tuple (Debezium {"field1": ..}, driver tuple) or UDT (by field name) -> tuple in declared order."""
    names = (
        [f"field{i + 1}" for i in range(len(t.params))] if t.name == "tuple" else [n for n, _ in t.udt_fields]
    )
    components = _components(t)
    if isinstance(value, Mapping):
        unknown = set(value) - set(names)
        if unknown:
            raise _bad(t, value, f"unknown field(s) {sorted(map(str, unknown))}")
        raw = [value.get(name) for name in names]
    elif isinstance(value, (list, tuple)) and (t.name == "tuple" or source == "debezium"):
        if len(value) > len(names):
            raise _bad(t, value, f"expected at most {len(names)} components")
        raw = list(value) + [None] * (len(names) - len(value))
    elif t.name == "udt" and source == "driver" and all(hasattr(value, name) for name in names):
        raw = [getattr(value, name) for name in names]
    else:
        raise _bad(t, value, "expected an object" if t.name == "udt" else "expected a tuple")
    return tuple(_to_native(sub, item, scalar, source) for sub, item in zip(components, raw, strict=True))


def _finish(t: CqlType, native: Native) -> object:
    """Canonical native value -> the value handed to psycopg."""
    if native is None:
        return None
    if is_multicell(t) and t.name != "udt" and not native:
        return None
    if _is_scalar(t) or _is_array(t):
        return native
    return JsonbValue(to_json_compatible(t, native))


# --------------------------------------------------------------------------------------------- public API


def from_debezium(t: CqlType, raw: object, *, modes: DebeziumModes = _DEFAULT_MODES) -> object:
    """Debezium ``after.<col>.value`` (JSON-decoded, or fastavro-decoded) -> Python value for psycopg.

    See the module table for each type; raises :class:`ValueMappingError` when ``raw`` does not fit.
    """

    if raw is None:
        return None
    if t.name in _SCALAR_PG:  # the hot path: a scalar needs no walk and no finishing
        try:
            return _scalar_dbz(t, raw, modes)
        except ValueMappingError:
            raise
        except (ValueError, TypeError, OverflowError, ArithmeticError) as error:
            raise ValueMappingError(
                f"cannot map {_short(raw)} to CQL {format_cql_type(t)}: {error}"
            ) from error

    def scalar(sub: CqlType, value: object) -> Native:
        return _scalar_dbz(sub, value, modes)

    return _wrap(t, raw, lambda: _finish(t, _to_native(t, raw, scalar, "debezium")))


def debezium_converter(t: CqlType, modes: DebeziumModes = _DEFAULT_MODES) -> Callable[[object], object]:
    """:func:`from_debezium` for one column type, resolved once (the per-event hot path of decoding)."""
    if t.name not in _SCALAR_PG:
        return lambda raw: from_debezium(t, raw, modes=modes)
    common = _COMMON_SCALARS.get(t.name)

    def convert(raw: object) -> object:
        if raw is None:
            return None
        try:
            return common(t, raw) if common is not None else _scalar_dbz(t, raw, modes)
        except ValueMappingError:
            raise
        except (ValueError, TypeError, OverflowError, ArithmeticError) as error:
            raise ValueMappingError(
                f"cannot map {_short(raw)} to CQL {format_cql_type(t)}: {error}"
            ) from error

    return convert


def from_driver(t: CqlType, value: object) -> object:
    """cassandra-driver result value -> exactly what :func:`from_debezium` gives for the same data
    (durations collapsed the way Debezium does, inet IPv4-mapped -> IPv4, timestamps to milliseconds)."""
    return _wrap(t, value, lambda: _finish(t, _to_native(t, value, _scalar_driver, "driver")))


def to_json_compatible(t: CqlType, value: object) -> object:
    """The documented jsonb encoding of a canonical value (or of a :class:`JsonbValue`, returned as is)."""
    if isinstance(value, JsonbValue):
        return value.obj
    return _json(t, value)


def _json(t: CqlType, value: Native) -> object:
    if value is None:
        return None
    encode = _JSON_SCALARS.get(t.name)
    if encode is not None:
        return encode(value)
    if t.name in ("list", "set", "vector"):
        return [_json(t.params[0], item) for item in value]
    if t.name == "map":
        return _json_map(t, value)
    items = list(value.values()) if isinstance(value, Mapping) else list(value)
    encoded = [_json(sub, item) for sub, item in zip(_components(t), items, strict=True)]
    if t.name == "tuple":
        return encoded
    return {name: item for (name, _), item in zip(t.udt_fields, encoded, strict=True)}


def _json_map(t: CqlType, value: Native) -> object:
    pairs = sorted(
        value.items() if isinstance(value, Mapping) else value, key=lambda kv: _order_key(t.params[0], kv[0])
    )
    key_t, value_t = t.params
    if key_t.name in ("text", "ascii"):
        return {k: _json(value_t, v) for k, v in pairs}
    return [[_json(key_t, k), _json(value_t, v)] for k, v in pairs]


def _json_int(value: int) -> int | str:
    return value if abs(value) <= _MAX_SAFE_JSON_INT else str(value)


def _json_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _json_duration(value: dt.timedelta) -> str:
    micros = abs(value // dt.timedelta(microseconds=1))
    days, rest = divmod(micros, 86_400 * 10**6)
    seconds, micro = divmod(rest, 10**6)
    sign = "-" if value < dt.timedelta(0) else ""
    return f"{sign}P{days}DT{seconds}.{micro:06d}S"


def _json_timestamp(value: dt.datetime) -> str:
    return value.astimezone(_UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_JSON_SCALARS: Final[Mapping[str, Callable[[Any], object]]] = {
    "text": str,
    "ascii": str,
    "tinyint": int,
    "smallint": int,
    "int": int,
    "bigint": _json_int,
    "counter": _json_int,
    "varint": _json_int,
    "decimal": lambda v: format(v, "f"),
    "float": _json_float,
    "double": _json_float,
    "boolean": bool,
    "blob": lambda v: base64.b64encode(v).decode("ascii"),
    "date": lambda v: v.isoformat(),
    "time": lambda v: v.isoformat(timespec="microseconds"),
    "timestamp": _json_timestamp,
    "duration": _json_duration,
    "uuid": str,
    "timeuuid": str,
    "inet": str,
}


# --------------------------------------------------------------------------------------------- cell bytes

_CASS_TYPES: Final[Mapping[str, Any]] = {
    "text": cqltypes.UTF8Type,
    "ascii": cqltypes.AsciiType,
    "tinyint": cqltypes.ByteType,
    "smallint": cqltypes.ShortType,
    "int": cqltypes.Int32Type,
    "bigint": cqltypes.LongType,
    "counter": cqltypes.CounterColumnType,
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
_PROTOCOL_VERSION: Final = 5


def _driver_scalar_value(t: CqlType, value: Native) -> object:
    """Canonical value -> what the driver serializer expects (inet as text, duration as Duration)."""
    if t.name == "inet":
        return str(value)
    if t.name == "duration":
        micros = value // dt.timedelta(microseconds=1)
        days = abs(micros) // (86_400 * 10**6) * (1 if micros >= 0 else -1)
        return DriverDuration(0, days, (micros - days * 86_400 * 10**6) * 1000)
    return value


def cell_order_bytes(t: CqlType, value: object) -> bytes:
    """Cassandra's serialized bytes of a ``from_*`` value (protocol v5), for the equal-timestamp rule
    (the greater unsigned byte string wins).  None -> ``b""``.

    Deviations: jsonb-mapped types return the canonical JSON (UTF-8, compact, key order as encoded), not
    Cassandra's bytes; durations serialize the collapsed ``(0 months, days, nanos)``; times lack the
    truncated nanoseconds; an IPv4-mapped IPv6 inet gives the 4-byte IPv4 form; multi-cell collections
    give the frozen serialization (Cassandra compares such cells one by one).
    """
    if value is None:
        return b""
    try:
        if pg_type(t) == "jsonb":
            obj = to_json_compatible(t, value)
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        if _is_scalar(t):
            return bytes(_CASS_TYPES[t.name].serialize(_driver_scalar_value(t, value), _PROTOCOL_VERSION))
        return _array_bytes(t, value)
    except (ValueError, TypeError, OverflowError, struct.error) as error:
        raise ValueMappingError(
            f"cannot serialize {_short(value)} as CQL {format_cql_type(t)}: {error}"
        ) from error


def _array_bytes(t: CqlType, value: object) -> bytes:
    element = t.params[0]
    if not isinstance(value, (list, tuple)):
        raise TypeError("expected a list")
    items = [_driver_scalar_value(element, item) for item in value]
    base = _CASS_TYPES[element.name]
    if t.name == "vector":
        casstype = cqltypes.VectorType.apply_parameters([base, t.dimension], None)
    else:
        collection = cqltypes.ListType if t.name == "list" else cqltypes.SetType
        casstype = collection.apply_parameters([base], None)
    return bytes(casstype.serialize(items, _PROTOCOL_VERSION))

"""Row-by-row comparison of a Cassandra table with its PostgreSQL mirror, through an independent oracle.

The sink converts values with :mod:`models.cql_types`; if the comparison used the same converters, an error
there would be made on both sides and cancel out. So this module shares *nothing* with them: it only parses a
column's CQL type (:class:`~models.cql_types.CqlType`) and brings

- a cassandra-driver result value (:func:`canonical_cassandra`), and
- a value as psycopg returns it from the mirror, jsonb documents included (:func:`canonical_postgres`),

to one **canonical form**, plain JSON data (``None``, ``bool``, ``int``, ``str``, ``list``), then compares the
canonical forms per primary key. Each normaliser is small and written from the documented behaviour
(``docs/type-mapping.md``), not from the sink's code. The one exception: a column under a transform rule is
compared as Cassandra's value mapped by the sink's converter and transformed by the plan
(:func:`transformed_cassandra`): the transform functions are checked against their own expected values in
``tests/unit/test_transforms.py``, and the untransformed columns of the same rows stay independent.

Canonical form, per CQL type (C: the driver's Python value; P: psycopg's; J: inside a jsonb document):

=================  ==========================================================================================
text, ascii        the string (C, P: ``str``; J: string)
tinyint .. bigint, the ``int`` (C: ``int``; P: ``int``, or ``Decimal`` with no fraction for varint's
varint, counter    ``numeric``; J: a number, or a decimal string beyond 2^53 - 1)
decimal            plain notation with the scale kept: ``"1.10"``, ``"0.000001"``; a negative scale is
                   written out (``1E+3`` -> ``"1000"``: PostgreSQL's numeric has no negative scale)
                   (C, P: ``Decimal``; J: that string)
float              the *float32* value's shortest decimal that round-trips in float32 (``"0.1"``, not
                   ``"0.10000000149011612"``: the driver widens to a double, PostgreSQL's real prints the
                   shortest form); ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; ``"-0.0"`` kept
double             ``repr`` of the double (``"0.1"``, ``"-0.0"``), ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
(in jsonb)         a jsonb number is a PostgreSQL numeric, which has no negative zero: a zero float or double
                   stored in jsonb is ``"0.0"`` whatever its sign (rule applied on the Cassandra side)
boolean            ``True`` / ``False``
blob               ``"0x"`` + lower-case hex (C, P: ``bytes``; J: standard base64 with padding)
uuid, timeuuid     lower-case hyphenated string (C, P: ``uuid.UUID``; J: that string, lower case required)
inet               the address's compressed text; an IPv4-mapped IPv6 address (``::ffff:1.2.3.4``) is the
                   IPv4 address, because the agent sends it as IPv4 (C: ``str``; P: ``IPv4Address`` /
                   ``IPv6Address``, or a full-length ``*Interface``)
date               ``"YYYY-MM-DD"`` (C: ``cassandra.util.Date`` or ``datetime.date``; P: ``datetime.date``)
time               ``"HH:MM:SS.ffffff"``: sub-microsecond digits are truncated (PostgreSQL's time holds
                   microseconds) (C: ``cassandra.util.Time`` or ``datetime.time``; P: ``datetime.time``)
timestamp          ``"YYYY-MM-DDTHH:MM:SS.ffffffZ"`` in UTC (C: naive ``datetime`` in UTC, as the driver
                   returns it; P: an aware ``datetime``, timestamptz -- a naive one means the mirror lost the
                   time zone and is marked so, never equal; J: ``"YYYY-MM-DDTHH:MM:SS.fffZ"``)
duration           ``"<seconds>.<micros:06>s"`` of the total: the agent collapses a duration to nanoseconds
                   with a month of 30 days and a day of 86400 s, and the mirror's interval holds
                   microseconds, truncated toward zero (C: ``cassandra.util.Duration``; P: ``timedelta``; J:
                   ``"[-]P<days>DT<seconds>.<micros:06>S"``)
list, vector       list of the elements' forms, in order (P: an array, or jsonb array)
set                list of the elements' forms sorted by their JSON text: order is not data (C: ``SortedSet``
                   in the driver's order; P: an array in Cassandra's order)
map                list of ``[key, value]`` pairs sorted by the key's JSON text (C: ``dict`` /
                   ``OrderedMapSerializedKey``; J: an object when the key type is text or ascii, else an
                   array of ``[key, value]`` arrays)
tuple              list of the components' forms, ``None`` for a null component (C: ``tuple``; J: array)
UDT                object ``{field: form}`` in declaration order (C: the driver's named tuple; J: object)
null               ``None``; an empty non-frozen collection is null in Cassandra, and so in the mirror
=================  ==========================================================================================

A jsonb value that does not follow the documented encoding canonicalises to a ``"not the jsonb encoding of
..."`` string, so it never compares equal.
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeAlias

from cassandra.util import Date as DriverDate
from cassandra.util import Duration as DriverDuration
from cassandra.util import Time as DriverTime
from psycopg import Connection, sql

from app.cql import names, table_name
from models.convergence import UNKNOWN
from models.cql_types import CqlType, from_driver
from models.mirror_spec import MirrorSpec
from models.mutations import Key
from models.table_schema import TableSchema
from models.transforms import TransformPlan

Canonical: TypeAlias = Any
"""JSON data: None, bool, int, str, or a list (a dict for a UDT) of canonical forms."""
Row = dict[str, Canonical]

_NATIVE: Final = frozenset(
    {
        *("text", "ascii", "varchar", "tinyint", "smallint", "int", "bigint", "counter", "varint"),
        *("decimal", "float", "double", "boolean", "blob", "date", "time", "timestamp", "duration"),
        *("uuid", "timeuuid", "inet"),
    }
)
_INTEGERS: Final = frozenset({"tinyint", "smallint", "int", "bigint", "counter", "varint"})
_FLOATS: Final = frozenset({"float", "double"})
_UTC: Final = dt.UTC
_EPOCH_DATE: Final = dt.date(1970, 1, 1)
_NANOS_PER_DAY: Final = 86_400 * 10**9


def stored_as_jsonb(t: CqlType) -> bool:
    """Whether the mirror holds a column of type ``t`` as jsonb: everything but natives, lists and sets of
    natives (arrays) and ``vector<float>`` (``real[]``) -- the documented mapping (``docs/type-mapping.md``)."""
    if t.name in _NATIVE:
        return False
    if t.name in ("list", "set"):
        return t.params[0].name not in _NATIVE
    return not (t.name == "vector" and t.params[0].name == "float")


# --- shared canonical forms (independent of the sink) ------------------------------------------------------


def _json_text(value: Canonical) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _sorted(items: Iterable[Canonical]) -> list[Canonical]:
    return sorted(items, key=_json_text)


def _float_form(value: float, single: bool, in_jsonb: bool) -> str:
    """NaN/infinities as words; float32 as its shortest round-tripping decimal; a jsonb zero is unsigned."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if in_jsonb and value == 0:
        return "0.0"
    if not single:
        return repr(value)
    packed = _float32(value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if _float32(candidate) == packed:
            return repr(candidate)
    return repr(value)  # pragma: no cover - 9 significant digits always suffice


def _float32(value: float) -> bytes | None:
    """The float32 nearest ``value``, as bytes; None beyond float32's range."""
    try:
        return struct.pack("<f", value)
    except OverflowError:
        return None


def _decimal_form(value: Decimal) -> str:
    """Plain notation, scale kept (a negative exponent's zeros written out)."""
    return format(value, "f")


def _inet_form(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.compressed


def _time_form(nanos: int) -> str:
    micros = nanos // 1000
    seconds, micro = divmod(micros, 10**6)
    minutes, second = divmod(seconds, 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:{second:02d}.{micro:06d}"


def _timestamp_form(aware: dt.datetime) -> str:
    return aware.astimezone(_UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _duration_form(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    seconds, micro = divmod(abs(micros), 10**6)
    return f"{sign}{seconds}.{micro:06d}s"


def _map_form(pairs: Iterable[tuple[Canonical, Canonical]]) -> list[Canonical]:
    return sorted(([k, v] for k, v in pairs), key=lambda kv: _json_text(kv[0]))


def _udt_form(t: CqlType, items: Iterable[Canonical]) -> dict[str, Canonical]:
    return {name: item for (name, _), item in zip(t.udt_fields, items, strict=True)}


def _sequence_form(t: CqlType, forms: list[Canonical]) -> Canonical:
    """Elements already canonical, shaped by the collection type: sets sorted, UDTs by field."""
    if t.name == "set":
        return _sorted(forms)
    if t.name == "udt":
        return _udt_form(t, forms)
    return forms


def _element_types(t: CqlType, count: int) -> list[CqlType]:
    """The type of each item of a list/set/vector (one parameter) or tuple/UDT (one per component)."""
    if t.name == "udt":
        return [ft for _, ft in t.udt_fields]
    if t.name == "tuple":
        return list(t.params)
    return [t.params[0]] * count


# --- Cassandra: cassandra-driver values -------------------------------------------------------------------

_Normaliser = Callable[[CqlType, Any, bool], Canonical]


def _c_float(t: CqlType, value: float, in_jsonb: bool) -> Canonical:
    return _float_form(value, t.name == "float", in_jsonb)


def _c_str(t: CqlType, value: str, in_jsonb: bool) -> Canonical:
    """text/ascii as is; the driver returns inet as text too."""
    return _inet_form(ipaddress.ip_address(value)) if t.name == "inet" else value


def _c_datetime(t: CqlType, value: dt.datetime, in_jsonb: bool) -> Canonical:
    """The driver's timestamps are naive UTC."""
    return _timestamp_form(value if value.tzinfo else value.replace(tzinfo=_UTC))


def _c_date(t: CqlType, value: DriverDate, in_jsonb: bool) -> Canonical:
    return (_EPOCH_DATE + dt.timedelta(days=value.days_from_epoch)).isoformat()


def _c_time(t: CqlType, value: dt.time, in_jsonb: bool) -> Canonical:
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 10**6 + value.microsecond
    return _time_form(micros * 1000)


def _c_duration(t: CqlType, value: DriverDuration, in_jsonb: bool) -> Canonical:
    """Collapsed like the agent's NanoDuration: (months * 30 + days) days of 86400 s, plus the nanoseconds;
    then truncated toward zero to microseconds."""
    nanos = (value.months * 30 + value.days) * _NANOS_PER_DAY + value.nanoseconds
    micros = abs(nanos) // 1000
    return _duration_form(-micros if nanos < 0 else micros)


def _c_items(t: CqlType, value: Any, in_jsonb: bool) -> Canonical:
    """list, set, SortedSet, frozenset, tuple, UDT named tuple: item by item."""
    items = list(value)
    forms = [
        canonical_cassandra(sub, item, in_jsonb=in_jsonb)
        for sub, item in zip(_element_types(t, len(items)), items, strict=True)
    ]
    return _sequence_form(t, forms)


def _c_map(t: CqlType, value: Mapping[Any, Any], in_jsonb: bool) -> Canonical:
    """dict or OrderedMapSerializedKey; also a UDT returned as a mapping."""
    if t.name == "udt":
        return _udt_form(t, (canonical_cassandra(ft, value.get(n), True) for n, ft in t.udt_fields))
    key_t, value_t = t.params
    return _map_form(
        (canonical_cassandra(key_t, k, True), canonical_cassandra(value_t, v, True)) for k, v in value.items()
    )


_CASSANDRA: Final[tuple[tuple[type | tuple[type, ...], _Normaliser], ...]] = (
    (bool, lambda t, v, j: v),  # before int: bool is an int
    (int, lambda t, v, j: v),
    (float, _c_float),
    (Decimal, lambda t, v, j: int(v) if t.name in _INTEGERS else _decimal_form(v)),
    (str, _c_str),
    ((bytes, bytearray, memoryview), lambda t, v, j: "0x" + bytes(v).hex()),
    (uuid.UUID, lambda t, v, j: str(v)),
    (dt.datetime, _c_datetime),  # before date: a datetime is a date
    (dt.date, lambda t, v, j: v.isoformat()),
    (DriverDate, _c_date),
    (dt.time, _c_time),
    (DriverTime, lambda t, v, j: _time_form(v.nanosecond_time)),
    (DriverDuration, _c_duration),
    ((ipaddress.IPv4Address, ipaddress.IPv6Address), lambda t, v, j: _inet_form(v)),
    (Mapping, _c_map),  # OrderedMapSerializedKey is a Mapping
    ((list, tuple, set, frozenset), _c_items),
)
"""Driver value type -> its normaliser, first match wins. SortedSet is matched by iteration (below)."""


def canonical_cassandra(t: CqlType, value: object, in_jsonb: bool | None = None) -> Canonical:
    """A cassandra-driver result value of CQL type ``t`` in canonical form (the table in the module doc).

    ``in_jsonb``: whether the value ends up inside a jsonb document of the mirror (default: from ``t``);
    only the sign of a zero float depends on it."""
    if value is None:
        return None
    jsonb = stored_as_jsonb(t) if in_jsonb is None else in_jsonb
    for kind, normalise in _CASSANDRA:
        if isinstance(value, kind):
            return normalise(t, value, jsonb)
    if hasattr(value, "__iter__"):  # cassandra.util.SortedSet and other driver sequences
        return _c_items(t, value, jsonb)
    raise TypeError(f"no canonical form for a {type(value).__name__} of CQL type {t.name}")


# --- PostgreSQL: psycopg values ---------------------------------------------------------------------------


def _p_decimal(t: CqlType, value: Decimal) -> Canonical:
    """numeric: varint as an int when it has no fraction, decimal in plain notation."""
    if t.name in _INTEGERS and value == value.to_integral_value():
        return int(value)
    return _decimal_form(value)


def _p_datetime(t: CqlType, value: dt.datetime) -> Canonical:
    if value.tzinfo is None:
        return f"{value.isoformat()} without time zone"
    return _timestamp_form(value)


def _p_address(t: CqlType, value: object) -> Canonical:
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        if value.network.prefixlen != value.max_prefixlen:
            return value.with_prefixlen
        value = value.ip
    assert isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address)
    return _inet_form(value)


def _p_array(t: CqlType, value: list[Any]) -> Canonical:
    forms = [canonical_postgres(t.params[0], item) for item in value]
    return _sorted(forms) if t.name == "set" else forms


_POSTGRES: Final[tuple[tuple[type | tuple[type, ...], Callable[[CqlType, Any], Canonical]], ...]] = (
    (bool, lambda t, v: v),
    (int, lambda t, v: v),
    (float, lambda t, v: _float_form(v, t.name == "float", False)),
    (Decimal, _p_decimal),
    (str, lambda t, v: v),
    ((bytes, bytearray, memoryview), lambda t, v: "0x" + bytes(v).hex()),
    (uuid.UUID, lambda t, v: str(v)),
    (dt.datetime, _p_datetime),
    (dt.date, lambda t, v: v.isoformat()),
    (
        dt.time,
        lambda t, v: _time_form(((v.hour * 60 + v.minute) * 60 + v.second) * 10**9 + v.microsecond * 1000),
    ),
    (dt.timedelta, lambda t, v: _duration_form(v // dt.timedelta(microseconds=1))),
    (
        (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface, ipaddress.IPv6Interface),
        _p_address,
    ),
    (list, _p_array),
)


def canonical_postgres(t: CqlType, value: object) -> Canonical:
    """A mirror column's value as psycopg returns it (default loaders; jsonb already parsed) in canonical
    form. ``t`` is the Cassandra column's CQL type."""
    if value is None:
        return None
    if stored_as_jsonb(t):
        return canonical_json(t, value)
    for kind, normalise in _POSTGRES:
        if isinstance(value, kind):
            return normalise(t, value)
    raise TypeError(f"no canonical form for a {type(value).__name__} from PostgreSQL (CQL type {t.name})")


# --- PostgreSQL: jsonb documents --------------------------------------------------------------------------

_JSON_PATTERNS: Final[Mapping[str, re.Pattern[str]]] = {
    "decimal": re.compile(r"-?\d+(\.\d+)?"),
    "integer": re.compile(r"-?\d+"),
    "uuid": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    "date": re.compile(r"\d{4}-\d\d-\d\d"),
    "time": re.compile(r"\d\d:\d\d:\d\d\.\d{6}"),
    "timestamp": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"),
    "duration": re.compile(r"(-?)P(\d+)DT(\d+)\.(\d{6})S"),
}
_FLOAT_WORDS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _NotEncoded(ValueError):
    """A jsonb value that does not follow the documented encoding."""


def _matched(kind: str, value: object) -> re.Match[str]:
    match = _JSON_PATTERNS[kind].fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _NotEncoded
    return match


def _j_integer(t: CqlType, value: Any) -> Canonical:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return value
    number = int(_matched("integer", value).group())
    if abs(number) < 2**53:
        raise _NotEncoded  # a safe integer is a JSON number, not a string
    return number


def _j_float(t: CqlType, value: Any) -> Canonical:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _float_form(float(value), t.name == "float", True)
    if value in _FLOAT_WORDS:
        return _float_form(_FLOAT_WORDS[value], t.name == "float", True)
    raise _NotEncoded


def _j_str(t: CqlType, value: Any) -> Canonical:
    if not isinstance(value, str):
        raise _NotEncoded
    return value


def _j_bool(t: CqlType, value: Any) -> Canonical:
    if not isinstance(value, bool):
        raise _NotEncoded
    return value


def _j_blob(t: CqlType, value: Any) -> Canonical:
    try:
        return "0x" + base64.b64decode(_j_str(t, value), validate=True).hex()
    except binascii.Error:
        raise _NotEncoded from None


def _j_timestamp(t: CqlType, value: Any) -> Canonical:
    text = _matched("timestamp", value).group()
    return _timestamp_form(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def _j_duration(t: CqlType, value: Any) -> Canonical:
    sign, days, seconds, micros = _matched("duration", value).groups()
    total = (int(days) * 86_400 + int(seconds)) * 10**6 + int(micros)
    return _duration_form(-total if sign else total)


def _j_time(t: CqlType, value: Any) -> Canonical:
    parsed = dt.time.fromisoformat(_matched("time", value).group())
    return _time_form(
        ((parsed.hour * 60 + parsed.minute) * 60 + parsed.second) * 10**9 + parsed.microsecond * 1000
    )


_JSON_SCALARS: Final[Mapping[str, Callable[[CqlType, Any], Canonical]]] = {
    **dict.fromkeys(("text", "ascii", "varchar"), _j_str),
    **dict.fromkeys(_INTEGERS, _j_integer),
    "decimal": lambda t, v: _decimal_form(Decimal(_matched("decimal", v).group())),
    "float": _j_float,
    "double": _j_float,
    "boolean": _j_bool,
    "blob": _j_blob,
    "uuid": lambda t, v: _matched("uuid", v).group(),
    "timeuuid": lambda t, v: _matched("uuid", v).group(),
    "inet": lambda t, v: _inet_form(ipaddress.ip_address(_j_str(t, v))),
    "date": lambda t, v: dt.date.fromisoformat(_matched("date", v).group()).isoformat(),
    "time": _j_time,
    "timestamp": _j_timestamp,
    "duration": _j_duration,
}


def _j_map(t: CqlType, value: Any) -> Canonical:
    """An object for text/ascii keys, else ``[[key, value], ...]``."""
    key_t, value_t = t.params
    if key_t.name in ("text", "ascii", "varchar"):
        if not isinstance(value, dict):
            raise _NotEncoded
        pairs: Iterable[Any] = value.items()
    elif isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        pairs = value
    else:
        raise _NotEncoded
    return _map_form((canonical_json(key_t, k), canonical_json(value_t, v)) for k, v in pairs)


def _j_structure(t: CqlType, value: Any) -> Canonical:
    if t.name == "map":
        return _j_map(t, value)
    if t.name == "udt":
        names = [n for n, _ in t.udt_fields]
        # Fields added to the type after a value was written are absent from it and read as null, as in
        # Cassandra (whose own encoding omits trailing fields the same way).
        if not isinstance(value, dict) or list(value) != names[: len(value)]:
            raise _NotEncoded
        value = [value.get(n) for n in names]
    if not isinstance(value, list):
        raise _NotEncoded
    forms = [
        canonical_json(sub, item) for sub, item in zip(_element_types(t, len(value)), value, strict=True)
    ]
    return _sequence_form(t, forms)


def canonical_json(t: CqlType, value: object) -> Canonical:
    """A value inside a mirror's jsonb document (as :func:`json.loads` gives it) in canonical form."""
    if value is None:
        return None
    scalar = _JSON_SCALARS.get(t.name)
    try:
        return scalar(t, value) if scalar is not None else _j_structure(t, value)
    except (_NotEncoded, ValueError):
        return f"not the jsonb encoding of {t.name}: {value!r}"


# --- comparison -------------------------------------------------------------------------------------------


def hashable(value: Canonical) -> object:
    """A canonical form as a hashable key part (lists -> tuples, objects -> tuples of pairs)."""
    if isinstance(value, list):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, hashable(v)) for k, v in value.items())
    return value


@dataclass
class TableDiff:
    table: str
    cassandra_rows: int = 0
    postgres_rows: int = 0
    missing: list[Key] = field(default_factory=list)
    """In Cassandra, not in PostgreSQL (canonical keys)."""
    extra: list[Key] = field(default_factory=list)
    """In PostgreSQL, not in Cassandra (canonical keys)."""
    different: dict[Key, dict[str, tuple[Canonical, Canonical]]] = field(default_factory=dict)
    """Per key, per column: (Cassandra's canonical form, the mirror's canonical form)."""

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def summary(self) -> str:
        state = "EQUAL" if self.equal else "DIFFERENT"
        return (
            f"{self.table}: cassandra={self.cassandra_rows} postgres={self.postgres_rows} "
            f"missing={len(self.missing)} extra={len(self.extra)} different={len(self.different)} {state}"
        )


def diff_rows(
    table: str, schema: TableSchema, cassandra: Mapping[Key, Row], postgres: Mapping[Key, Row]
) -> TableDiff:
    """Compare two keyed sets of canonical rows column by column (pure)."""
    diff = TableDiff(table, len(cassandra), len(postgres))
    diff.missing = sorted((k for k in cassandra if k not in postgres), key=repr)
    diff.extra = sorted((k for k in postgres if k not in cassandra), key=repr)
    for key in cassandra.keys() & postgres.keys():
        left, right = cassandra[key], postgres[key]
        cols = {
            c.name: (left.get(c.name), right.get(c.name))
            for c in schema.columns
            if left.get(c.name) != right.get(c.name)
        }
        if cols:
            diff.different[key] = cols
    return diff


def _keyed(schema: TableSchema, rows: Iterable[Row]) -> dict[Key, Row]:
    keys = [c.name for c in (*schema.partition_key, *schema.clustering)]
    return {tuple(hashable(row[k]) for k in keys): row for row in rows}


def _all_columns(schema: TableSchema) -> tuple[Any, ...]:
    return (*schema.partition_key, *schema.clustering, *schema.columns)


def canonical_transformed(value: object) -> Canonical:
    """The canonical form of a transformed value, the same on both sides: a masked value is text (or null),
    a normalised timestamp an aware (timestamptz, shown in UTC) or naive (timestamp) ISO text."""
    if value is None or value is UNKNOWN:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(_UTC).isoformat() if value.tzinfo else value.isoformat()
    return value if isinstance(value, str | int | bool) else str(value)


def transformed_cassandra(plan: TransformPlan) -> dict[str, Callable[[CqlType, object], Canonical]]:
    """Per transformed column, a driver value -> the canonical form of its transformed value: the sink's
    mapping of the driver value (what the sink transforms too), then the plan's function (unit-tested on its
    own expected values). Reconciliation hashes rows through these, and the e2e tests compare with them."""
    out: dict[str, Callable[[CqlType, object], Canonical]] = {}
    for column in plan.columns:
        apply = column.apply
        out[column.name] = lambda t, v, f=apply: canonical_transformed(  # type: ignore[misc]
            None if v is None else f(from_driver(t, v))
        )
    return out


def cassandra_rows(
    session: Any, schema: TableSchema, transforms: TransformPlan | None = None
) -> dict[Key, Row]:
    """Every row of the Cassandra table in canonical form, by canonical primary key; with ``transforms``,
    as the mirror should hold it (dropped columns left out, transformed ones transformed)."""
    if transforms is not None:
        schema = transforms.mirrored(schema)
    columns = _all_columns(schema)
    special = transformed_cassandra(transforms) if transforms is not None else {}
    convert = [special.get(c.name, canonical_cassandra) for c in columns]
    target = table_name(schema.keyspace, schema.table)
    query = f"SELECT {names(c.name for c in columns)} FROM {target}"  # noqa: S608 (every name protected)
    return _keyed(
        schema,
        (
            {c.name: f(c.type, value) for c, f, value in zip(columns, convert, record, strict=True)}
            for record in session.execute(query)
        ),
    )


def postgres_rows(conn: Connection[Any], schema: TableSchema, spec: MirrorSpec) -> dict[Key, Row]:
    """Every row of the mirror ``spec`` in canonical form, by canonical primary key."""
    plan = spec.transforms
    if plan is not None:
        schema = plan.mirrored(schema)
    columns = _all_columns(schema)
    changed = {c.name for c in plan.columns} if plan is not None else set()
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c.name) for c in columns), sql.Identifier(spec.schema, spec.name)
    )
    return _keyed(
        schema,
        (
            {
                c.name: canonical_transformed(value)
                if c.name in changed
                else canonical_postgres(c.type, value)
                for c, value in zip(columns, record, strict=True)
            }
            for record in conn.execute(query)
        ),
    )


def compare_tables(
    session: Any, conn: Connection[Any], tables: Iterable[tuple[TableSchema, MirrorSpec]]
) -> list[TableDiff]:
    """Each table with its mirror; a spec with a transform plan is compared with the transformed rows (a
    dropped column on neither side)."""
    return [
        diff_rows(
            f"{schema.keyspace}.{schema.table}",
            schema if spec.transforms is None else spec.transforms.mirrored(schema),
            cassandra_rows(session, schema, spec.transforms),
            postgres_rows(conn, schema, spec),
        )
        for schema, spec in tables
    ]

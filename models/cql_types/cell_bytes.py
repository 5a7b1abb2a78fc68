"""Cassandra's serialized bytes of a value (:func:`cell_order_bytes`), for the equal-timestamp rule, and the
cassandra-driver marshal class of each CQL type (:func:`driver_type`)."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any, Final

from cassandra import cqltypes

from models.cql_types.jsonb import to_json_compatible
from models.cql_types.parsing import CqlType, Native, components, format_cql_type, is_scalar
from models.cql_types.temporal import driver_duration
from models.cql_types.type_map import pg_type
from models.cql_types.value_errors import short_repr
from models.errors import ValueMappingError

_PROTOCOL_VERSION: Final = 5
_DRIVER_SCALAR_TYPES: Final[Mapping[str, Any]] = {
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
_DRIVER_COLLECTIONS: Final[Mapping[str, Any]] = {
    "list": cqltypes.ListType,
    "set": cqltypes.SetType,
    "map": cqltypes.MapType,
    "tuple": cqltypes.TupleType,
}


def driver_type(t: CqlType) -> Any:
    """cassandra-driver's marshal class for ``t`` (``serialize`` / ``to_binary`` / ``from_binary``); UDTs
    get a class of their own, outside any keyspace."""
    if is_scalar(t):
        return _DRIVER_SCALAR_TYPES[t.name]
    if t.name == "udt":
        names = [name for name, _ in t.udt_fields]
        field_types = [driver_type(sub) for sub in components(t)]
        return cqltypes.UserType.make_udt_class("", t.udt_name, names, field_types)
    if t.name == "vector":
        return cqltypes.VectorType.apply_parameters([driver_type(t.params[0]), t.dimension], None)
    return _DRIVER_COLLECTIONS[t.name].apply_parameters([driver_type(p) for p in t.params], None)


def _driver_scalar_value(t: CqlType, value: Native) -> object:
    """Canonical value -> what the driver serializer expects (inet as text, duration as Duration)."""
    if t.name == "inet":
        return str(value)
    if t.name == "duration":
        return driver_duration(value)
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
        if is_scalar(t):
            return bytes(driver_type(t).serialize(_driver_scalar_value(t, value), _PROTOCOL_VERSION))
        return _array_bytes(t, value)
    except (ValueError, TypeError, OverflowError, struct.error) as error:
        raise ValueMappingError(
            f"cannot serialize {short_repr(value)} as CQL {format_cql_type(t)}: {error}"
        ) from error


def _array_bytes(t: CqlType, value: object) -> bytes:
    if not isinstance(value, (list, tuple)):
        raise TypeError("expected a list")
    items = [_driver_scalar_value(t.params[0], item) for item in value]
    return bytes(driver_type(t).serialize(items, _PROTOCOL_VERSION))

"""Collections, tuples, UDTs and vectors: the container shapes Debezium and the driver use, walked down to
their scalars, then finished into what a column receives (an array, or a :class:`JsonbValue`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, TypeAlias

from models.cql_types.jsonb import JsonbValue, to_json_compatible
from models.cql_types.ordering import order_key
from models.cql_types.parsing import CqlType, Native, components, is_scalar
from models.cql_types.scalars import ScalarConverter
from models.cql_types.type_map import is_array, is_multicell
from models.cql_types.value_errors import bad_value

Source: TypeAlias = Literal["debezium", "driver"]


def to_native(t: CqlType, value: object, scalar: ScalarConverter, source: Source) -> Native:
    """Walk ``value`` by the structure of ``t``; ``scalar`` converts leaves; ``source`` picks the
    container shapes accepted."""
    if value is None:
        return None
    if is_scalar(t):
        return scalar(t, value)
    if t.name in ("list", "set", "vector"):
        items = [to_native(t.params[0], item, scalar, source) for item in _sequence(t, value, source)]
        return _finish_sequence(t, items, value)
    if t.name == "map":
        pairs = [
            (to_native(t.params[0], k, scalar, source), to_native(t.params[1], v, scalar, source))
            for k, v in _map_items(t, value)
        ]
        return sorted(pairs, key=lambda kv: order_key(t.params[0], kv[0]))
    return _struct_native(t, value, scalar, source)


def _sequence(t: CqlType, value: object, source: Source) -> list[object]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise bad_value(t, value, "expected an array")
    if source == "debezium" and not isinstance(value, (list, tuple)):
        raise bad_value(t, value, "expected an array")
    return list(value)


def _finish_sequence(t: CqlType, items: list[Native], original: object) -> list[Native]:
    if t.name == "set":
        return sorted(items, key=lambda item: order_key(t.params[0], item))
    if t.name == "vector" and len(items) != t.dimension:
        raise bad_value(t, original, f"vector needs {t.dimension} elements, got {len(items)}")
    return items


def _map_items(t: CqlType, value: object) -> list[tuple[object, object]]:
    """JSON object / Avro map / driver Mapping, or an array of [k, v] pairs / {"key", "value"} records."""
    if isinstance(value, Mapping):
        return list(value.items())
    if not isinstance(value, (list, tuple)):
        raise bad_value(t, value, "expected an object or an array of [key, value] pairs")
    pairs: list[tuple[object, object]] = []
    for entry in value:
        if isinstance(entry, Mapping) and set(entry) == {"key", "value"}:
            pairs.append((entry["key"], entry["value"]))
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            pairs.append((entry[0], entry[1]))
        else:
            raise bad_value(t, entry, "map entry must be [key, value]")
    return pairs


def _struct_native(t: CqlType, value: object, scalar: ScalarConverter, source: Source) -> tuple[Native, ...]:
    """Tuple (Debezium {"field1": ..}, driver tuple) or UDT (by field name) -> tuple in declared order."""
    names = (
        [f"field{i + 1}" for i in range(len(t.params))] if t.name == "tuple" else [n for n, _ in t.udt_fields]
    )
    if isinstance(value, Mapping):
        unknown = set(value) - set(names)
        if unknown:
            raise bad_value(t, value, f"unknown field(s) {sorted(map(str, unknown))}")
        raw = [value.get(name) for name in names]
    elif isinstance(value, (list, tuple)) and (t.name == "tuple" or source == "debezium"):
        if len(value) > len(names):
            raise bad_value(t, value, f"expected at most {len(names)} components")
        raw = list(value) + [None] * (len(names) - len(value))
    elif t.name == "udt" and source == "driver" and all(hasattr(value, name) for name in names):
        raw = [getattr(value, name) for name in names]
    else:
        raise bad_value(t, value, "expected an object" if t.name == "udt" else "expected a tuple")
    return tuple(to_native(sub, item, scalar, source) for sub, item in zip(components(t), raw, strict=True))


def finish(t: CqlType, native: Native) -> object:
    """Canonical native value -> the column's value: scalars and arrays as they are, else a
    :class:`JsonbValue`; an empty multi-cell collection is null, as in Cassandra."""
    if native is None:
        return None
    if is_multicell(t) and t.name != "udt" and not native:
        return None
    if is_scalar(t) or is_array(t):
        return native
    return JsonbValue(to_json_compatible(t, native))

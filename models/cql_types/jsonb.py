"""The jsonb encoding of a canonical value (:func:`to_json_compatible`) and :class:`JsonbValue`, the document
a jsonb column receives; deterministic, so equal Cassandra values give equal jsonb (``docs/type-mapping.md``).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from models.cql_types.ordering import order_key
from models.cql_types.parsing import CqlType, Native, components
from models.cql_types.temporal import duration_iso, utc_millis_iso

_MAX_SAFE_JSON_INT: Final = 2**53 - 1


@dataclass(frozen=True)
class JsonbValue:
    """The document of a jsonb column (``obj``: its :func:`to_json_compatible` encoding), compared by content.

    Pure: the sink wraps ``obj`` for PostgreSQL (``app.sink.store``)."""

    obj: Any


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
    encoded = [_json(sub, item) for sub, item in zip(components(t), items, strict=True)]
    if t.name == "tuple":
        return encoded
    return {name: item for (name, _), item in zip(t.udt_fields, encoded, strict=True)}


def _json_map(t: CqlType, value: Native) -> object:
    pairs = sorted(
        value.items() if isinstance(value, Mapping) else value, key=lambda kv: order_key(t.params[0], kv[0])
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
    "timestamp": utc_millis_iso,
    "duration": duration_iso,
    "uuid": str,
    "timeuuid": str,
    "inet": str,
}

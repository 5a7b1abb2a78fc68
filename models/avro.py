"""Avro change events in the Confluent wire format -> the dicts the JSON converter would give (pure).

Wire format: magic byte ``0x00``, the writer schema's registry id as a 4-byte big-endian integer, then the
Avro binary encoding of the datum (no container header). :func:`parse_wire_format` splits it;
:class:`AvroReader` decodes the payload with fastavro's ``schemaless_reader`` given the writer schema, which
the caller fetches by id (registry I/O lives in :mod:`app.sink.decoding`).

Normalisation to the JSON converter's shape (``value.converter.schemas.enable=false``), so that
:func:`models.debezium.envelope` and :func:`models.debezium.to_mutation` work unchanged:

- Unions come out unwrapped (``return_record_name=False``): an optional cell is ``None`` or its dict, exactly
  as in JSON; no ``{"branch": value}`` wrappers.
- Logical types other than ``decimal`` are stripped from the writer schema before parsing, so values keep the
  Connect wire form the JSON converter prints: ``timestamp-millis`` stays epoch milliseconds (not a
  ``datetime``), ``date`` days since the epoch, ``time-*`` integers, ``uuid`` a string. ``decimal`` stays a
  :class:`~decimal.Decimal` (the JSON converter's base64 text of the unscaled bytes says less, and
  :func:`models.cql_types.from_debezium` accepts a Decimal).
- ``bytes`` / ``fixed`` become standard base64 text (JsonConverter's default for bytes).
- ``float`` (32-bit) becomes the shortest decimal that rounds back to the same float32 (Jackson writes
  ``0.1f`` as ``0.1``, fastavro reads ``0.10000000149011612``); NaN and infinities of ``float`` and
  ``double`` become Jackson's strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
- A map whose keys are not strings is an Avro array of ``io.confluent.connect.avro.MapEntry`` records
  ``{key, value}`` under Confluent's AvroConverter; JsonConverter writes an array of ``[key, value]`` pairs,
  and so does this module.
- Field names are kept as written. Debezium's ``field.name.adjustment.mode=avro`` rewrites column names that
  are not valid Avro names (e.g. ``"my-col"`` -> ``my_col``); that is not reversible, so such a column is
  reported as an unknown column.

Only what a type needs is walked: a schema of ints, longs, strings and booleans decodes with no second pass.

Known limitation of the Debezium Cassandra agent (checked with 3.4.1.Final): it cannot emit Avro for a table
whose columns have different types. Every cell struct in the ``after`` record is named ``cell_value``, so
the Avro converter sees several different records under one name; serialisation fails with
``UnresolvedUnionException`` and the agent stops. Avro therefore only works for producers that give each
cell record its own name (the integration tests produce such events themselves, with schemas from
:func:`app.testing.debezium_like_schemas`); the JSON converter is what the agent can run today.
"""

from __future__ import annotations

import base64
import io
import json
import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

import fastavro

from models.errors import AvroDecodeError

MAGIC = 0
HEADER_SIZE = 5
"""Magic byte + 4-byte schema id."""

_KEPT_LOGICAL_TYPES = frozenset({"decimal"})
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

Normaliser = Callable[[Any], Any]


def is_wire_format(data: bytes | None) -> bool:
    """Does ``data`` start with the Confluent magic byte? (JSON text never starts with a NUL byte.)"""
    return data is not None and len(data) > 0 and data[0] == MAGIC


def parse_wire_format(data: bytes) -> tuple[int, memoryview]:
    """``(schema id, Avro payload)`` of a Confluent-framed message; :class:`AvroDecodeError` when it is not."""
    if len(data) < HEADER_SIZE:
        raise AvroDecodeError(f"Avro message of {len(data)} bytes is shorter than the 5-byte header")
    if data[0] != MAGIC:
        raise AvroDecodeError(f"wrong magic byte 0x{data[0]:02x} (expected 0x00)")
    schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
    return schema_id, memoryview(data)[HEADER_SIZE:]


def frame(schema_id: int, payload: bytes) -> bytes:
    """The wire format of ``payload`` written with schema ``schema_id`` (tests and tools)."""
    return bytes([MAGIC]) + schema_id.to_bytes(4, "big") + payload


def strip_logical_types(schema: Any) -> Any:
    """A copy of a schema (JSON form) without logical types other than decimal (see the module docstring)."""
    if isinstance(schema, list):
        return [strip_logical_types(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    copy: dict[str, Any] = {}
    for name, value in schema.items():
        if name == "logicalType" and value not in _KEPT_LOGICAL_TYPES:
            continue
        if name in ("type", "items", "values"):
            copy[name] = strip_logical_types(value)
        elif name == "fields" and isinstance(value, list):
            copy[name] = [strip_logical_types(field) for field in value]
        else:
            copy[name] = value
    return copy


class AvroReader:
    """A writer schema, parsed once, and the normaliser compiled for it."""

    def __init__(self, writer_schema: Any) -> None:
        if isinstance(writer_schema, str | bytes):
            try:
                writer_schema = json.loads(writer_schema)
            except ValueError as error:
                raise AvroDecodeError(f"writer schema is not JSON: {error}") from None
        try:
            self.schema = fastavro.parse_schema(strip_logical_types(writer_schema))
        except Exception as error:
            raise AvroDecodeError(f"writer schema does not parse: {type(error).__name__}: {error}") from None
        named: dict[str, Any] = (
            dict(self.schema.get("__named_schemas", {})) if isinstance(self.schema, dict) else {}
        )
        self._normalise = _Compiler(named).compile(self.schema)

    def decode(self, payload: bytes | memoryview) -> Any:
        """The datum of an Avro binary ``payload``, normalised to the JSON converter's shape."""
        stream = io.BytesIO(payload)
        try:
            datum = fastavro.schemaless_reader(stream, self.schema, None)
        except Exception as error:
            raise AvroDecodeError(f"Avro payload does not decode: {type(error).__name__}: {error}") from None
        left = len(payload) - stream.tell()
        if left:
            raise AvroDecodeError(f"{left} bytes left after the Avro datum (wrong writer schema?)")
        return datum if self._normalise is None else self._normalise(datum)


# -- normalisation ---------------------------------------------------------------------------------------
_JACKSON_WORDS = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _non_finite(number: float) -> float | str:
    if math.isfinite(number):
        return number
    return "NaN" if math.isnan(number) else _JACKSON_WORDS[number]


def _to_float32(number: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", number))[0])


def _float32(number: float) -> float | str:
    """The shortest decimal that rounds to the same float32 (Java's ``Float.toString``)."""
    if not math.isfinite(number):
        return _non_finite(number)
    for digits in range(1, 10):
        candidate = float(f"{number:.{digits}g}")
        if _to_float32(candidate) == number:
            return candidate
    return number


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema.get("type"))


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (float,),
    "double": (float,),
    "bytes": (bytes,),
    "fixed": (bytes,),
    "string": (str,),
    "enum": (str,),
    "array": (list,),
    "map": (dict,),
    "record": (dict,),
    "error": (dict,),
}


class _Compiler:
    """Builds a normaliser per schema node; None where the decoded value already has the JSON shape."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.records: dict[str, tuple[list[Normaliser | None], bool]] = {}
        """Record name -> (its normaliser in a cell, compiled yet?)."""

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            return self.named.get(schema, schema)
        if (
            isinstance(schema, dict)
            and isinstance(schema.get("type"), str | list | dict)
            and (_type_name(schema) not in _PYTHON_TYPES)
        ):
            return self.resolve(schema["type"])
        return schema

    def compile(self, schema: Any) -> Normaliser | None:
        schema = self.resolve(schema)
        kind = _type_name(schema)
        if isinstance(schema, dict) and schema.get("logicalType") == "decimal":
            return None  # a Decimal
        if kind in ("bytes", "fixed"):
            return _base64
        if kind == "float":
            return _float32
        if kind == "double":
            return _non_finite
        if kind == "union":
            return self._union(schema)
        if kind == "array":
            return self._array(schema)
        if kind == "map":
            values = self.compile(schema["values"])
            return None if values is None else (lambda m: {k: _apply(values, v) for k, v in m.items()})
        if kind in ("record", "error"):
            return self._record(schema)
        return None

    def _record(self, schema: Mapping[str, Any]) -> Normaliser | None:
        name = str(schema.get("name"))
        if name in self.records:
            cell, done = self.records[name]
            if done:
                return cell[0]
            return lambda value: _apply(cell[0], value)  # a recursive reference, resolved below
        cell = [None]
        self.records[name] = (cell, False)
        todo = [(f["name"], n) for f in schema["fields"] if (n := self.compile(f["type"])) is not None]

        def record(value: dict[str, Any]) -> dict[str, Any]:
            out = dict(value)
            for field, normalise in todo:
                item = out.get(field)
                if item is not None:
                    out[field] = normalise(item)
            return out

        cell[0] = record if todo else None
        self.records[name] = (cell, True)
        return cell[0]

    def _array(self, schema: Mapping[str, Any]) -> Normaliser | None:
        items = self.resolve(schema["items"])
        if _is_map_entry(items):
            types = {f["name"]: f["type"] for f in items["fields"]}
            key, val = self.compile(types["key"]), self.compile(types["value"])
            return lambda entries: [[_apply(key, e["key"]), _apply(val, e["value"])] for e in entries]
        normalise = self.compile(items)
        return None if normalise is None else (lambda values: [_apply(normalise, v) for v in values])

    def _union(self, branches: list[Any]) -> Normaliser | None:
        compiled = [(self.resolve(b), self.compile(b)) for b in branches]
        if all(n is None for _, n in compiled):
            return None
        live = [(b, n) for b, n in compiled if _type_name(b) != "null"]
        if len(live) == 1:
            return live[0][1]
        choices = [(_PYTHON_TYPES.get(_type_name(b), (object,)), n) for b, n in live]

        def union(value: Any) -> Any:
            for types, normalise in choices:
                if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
                    return _apply(normalise, value)
            return value

        return union


def _apply(normalise: Normaliser | None, value: Any) -> Any:
    return value if normalise is None or value is None else normalise(value)


def _is_map_entry(schema: Any) -> bool:
    """Confluent's AvroConverter record for one entry of a map with non-string keys."""
    if not isinstance(schema, dict) or _type_name(schema) != "record":
        return False
    names = {f.get("name") for f in schema.get("fields", [])}
    short = str(schema.get("name", "")).rsplit(".", 1)[-1]
    tagged = short.startswith("MapEntry") or schema.get("connect.internal.type") == "MapEntry"
    return tagged and names == {"key", "value"}

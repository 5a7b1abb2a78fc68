"""Debezium Cassandra change events -> :mod:`models.mutations` (pure).

Event shape (agent 3.4.1.Final, JSON converter, schemas disabled; Avro records decode to the same dicts):

- key: ``{"pk1": v, "ck1": v}``; clustering values are null for partition and range deletes.
- value: ``{"ts_ms", "op", "source": {"ts_us", "keyspace", "table", "snapshot", ...}, "after": {...}}``;
  every column in ``after`` is null (not touched) or ``{"value", "deletion_ts", "set"}``.
- ``op``: ``i`` INSERT (row marker), ``u`` UPDATE or cell deletion (``value`` null, ``deletion_ts`` null),
  ``d`` row delete (full key) or partition delete (clustering null), ``r`` range delete with
  ``after._range_start`` / ``after._range_end`` = ``{"method": "INCL_START_BOUND" | ..., "values": [{"name",
  "value" (CQL text form), "type" (marshal class)}]}`` in clustering order.
- A live cell's ``deletion_ts`` is its TTL expiry in microseconds.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from models.cql_types import DebeziumModes, from_debezium
from models.errors import MalformedEvent, UnknownColumn, UnsupportedEvent, ValueMappingError
from models.mutations import (
    Bound,
    BoundKind,
    CellWrite,
    Key,
    Mutation,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
)
from models.table_schema import Column, TableSchema

RANGE_FIELDS = frozenset({"_range_start", "_range_end"})


@dataclass(frozen=True, slots=True)
class Envelope:
    op: str
    ts_us: int
    keyspace: str
    table: str
    snapshot: bool
    key: Mapping[str, Any]
    after: Mapping[str, Any]


def parse_json(key: bytes | None, value: bytes | None) -> Envelope | None:
    """Parse JSON key and value bytes; None for a Kafka tombstone (null value)."""
    if value is None:
        return None
    try:
        decoded_value = orjson.loads(value)
        decoded_key = orjson.loads(key) if key else {}
    except orjson.JSONDecodeError as error:
        raise MalformedEvent(f"not JSON: {error}") from None
    return envelope(decoded_key, decoded_value)


def envelope(key: Any, value: Any) -> Envelope:
    """Validate the decoded record structure (shared by JSON and Avro)."""
    if not isinstance(value, dict):
        raise MalformedEvent(f"event value is {type(value).__name__}, not an object")
    if not isinstance(key, dict):
        raise MalformedEvent(f"event key is {type(key).__name__}, not an object")
    source, after, op = value.get("source"), value.get("after"), value.get("op")
    if not isinstance(source, dict) or not isinstance(after, dict) or not isinstance(op, str):
        raise MalformedEvent("event lacks source, after or op")
    ts_us = source.get("ts_us")
    keyspace, table = source.get("keyspace"), source.get("table")
    if not isinstance(ts_us, int) or isinstance(ts_us, bool):
        raise MalformedEvent(f"source.ts_us is not an integer: {ts_us!r}")
    if not isinstance(keyspace, str) or not isinstance(table, str):
        raise MalformedEvent("source lacks keyspace or table")
    snapshot = str(source.get("snapshot", "false")).lower() == "true"
    return Envelope(op, ts_us, keyspace, table, snapshot, key, after)


_DEFAULT_MODES = DebeziumModes()


def _value(schema: TableSchema, column: Column, raw: object, modes: DebeziumModes) -> object:
    try:
        if modes is _DEFAULT_MODES:
            return schema.converters[column.name](raw)
        return from_debezium(column.type, raw, modes=modes)
    except ValueMappingError as error:
        raise ValueMappingError(f"{column.name}: {error}") from None


def _key(schema: TableSchema, env: Envelope, columns: tuple[Column, ...], modes: DebeziumModes) -> Key | None:
    values: list[object] = []
    for column in columns:
        cell = env.after.get(column.name)
        raw = cell.get("value") if isinstance(cell, dict) else env.key.get(column.name)
        if raw is None:
            return None
        values.append(_value(schema, column, raw, modes))
    return tuple(values)


def _partition(schema: TableSchema, env: Envelope, modes: DebeziumModes) -> Key:
    partition = _key(schema, env, schema.partition_key, modes)
    if partition is None:
        raise MalformedEvent(f"event for {schema.keyspace}.{schema.table} lacks a partition key value")
    return partition


def _cells(schema: TableSchema, env: Envelope, modes: DebeziumModes) -> dict[str, CellWrite]:
    cells: dict[str, CellWrite] = {}
    name = ""
    try:
        for name, cell in env.after.items():
            if cell is None:
                continue
            column = schema.regular.get(name)
            if column is None:
                if (
                    name in RANGE_FIELDS
                    or name in schema.by_name
                    or name in schema.static
                    or name in schema.dropped
                ):
                    continue
                raise UnknownColumn(f"{schema.keyspace}.{schema.table} has no column {name!r}")
            if not isinstance(cell, dict):
                raise MalformedEvent(f"column {name!r} is not a cell object")
            raw = cell.get("value")
            if raw is None:
                cells[name] = CellWrite(None)
                continue
            expires = cell.get("deletion_ts")
            value = (
                schema.converters[name](raw)
                if modes is _DEFAULT_MODES
                else from_debezium(column.type, raw, modes=modes)
            )
            cells[name] = CellWrite(value, expires if isinstance(expires, int) else None)
    except ValueMappingError as error:
        raise ValueMappingError(f"{name}: {error}") from None
    return cells


def _marker_expiry(cells: Mapping[str, CellWrite], hints: frozenset[str]) -> int | None:
    """An INSERT's TTL applies to its row marker too; collection cells do not report it (always null)."""
    latest: int | None = None
    for name, cell in cells.items():
        if cell.value is None or name in hints:
            continue
        if cell.expires_at is None:
            return None  # a live cell without TTL: the statement had none
        if latest is None or cell.expires_at > latest:
            latest = cell.expires_at
    return latest


def _write(schema: TableSchema, env: Envelope, modes: DebeziumModes) -> RowWrite:
    key = _key(schema, env, schema.partition_key + schema.clustering, modes)
    if key is None:
        raise MalformedEvent(
            f"{env.op!r} event for {schema.keyspace}.{schema.table} lacks a primary key value"
        )
    cells = _cells(schema, env, modes)
    insert = env.op == "i"
    return RowWrite(
        key=key,
        ts=env.ts_us,
        cells=cells,
        marker=insert,
        marker_expires_at=_marker_expiry(cells, schema.hint_columns) if insert else None,
        hint_columns=frozenset(cells) & schema.hint_columns,
    )


def _delete(schema: TableSchema, env: Envelope, modes: DebeziumModes) -> RowDelete | PartitionDelete:
    partition = _partition(schema, env, modes)
    if not schema.clustering:
        return RowDelete(partition, env.ts_us)
    clustering = _key(schema, env, schema.clustering, modes)
    if clustering is None:
        return PartitionDelete(partition, env.ts_us)
    return RowDelete(partition + clustering, env.ts_us)


def _bound(schema: TableSchema, raw: Any, side: str) -> Bound:
    if raw is None:
        return Bound((), BoundKind.INCLUSIVE)
    if not isinstance(raw, dict) or not isinstance(raw.get("values"), list):
        raise MalformedEvent(f"_range_{side} is not a bound object")
    method = str(raw.get("method", ""))
    kind = BoundKind.EXCLUSIVE if method.startswith("EXCL") else BoundKind.INCLUSIVE
    values: list[object] = []
    for column, item in zip(schema.clustering, raw["values"], strict=False):
        if not isinstance(item, dict) or item.get("name") != column.name:
            raise MalformedEvent(f"_range_{side} names {item!r}, expected clustering column {column.name!r}")
        values.append(parse_literal(column, item.get("value")))
    return Bound(tuple(values), kind)


def _range(schema: TableSchema, env: Envelope, modes: DebeziumModes) -> RangeDelete:
    return RangeDelete(
        _partition(schema, env, modes),
        _bound(schema, env.after.get("_range_start"), "start"),
        _bound(schema, env.after.get("_range_end"), "end"),
        env.ts_us,
    )


_DECODERS: dict[str, Callable[[TableSchema, Envelope, DebeziumModes], Mutation]] = {
    "i": _write,
    "u": _write,
    "c": _write,
    "d": _delete,
    "r": _range,
}


def to_mutation(schema: TableSchema, env: Envelope, modes: DebeziumModes | None = None) -> Mutation:
    """The mutation an event stands for, with keys and values mapped by the table's CQL types."""
    decode = _DECODERS.get(env.op)
    if decode is None:
        raise UnsupportedEvent(f"unknown op {env.op!r}")
    return decode(schema, env, modes or _DEFAULT_MODES)


# -- CQL literals in range bounds ------------------------------------------------------------------------
def _timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _time(text: str) -> dt.time:
    hms, _, fraction = text.partition(".")
    return dt.time.fromisoformat(hms).replace(microsecond=int((fraction + "000000")[:6]) if fraction else 0)


def _blob(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.lower().startswith("0x") else text)


_LITERALS: dict[str, Callable[[str], object]] = {
    **dict.fromkeys(("text", "ascii", "varchar"), str),
    **dict.fromkeys(("tinyint", "smallint", "int", "bigint", "varint", "counter"), int),
    "decimal": Decimal,
    "float": float,
    "double": float,
    "boolean": lambda text: text.lower() == "true",
    "uuid": uuid.UUID,
    "timeuuid": uuid.UUID,
    "timestamp": _timestamp,
    "date": dt.date.fromisoformat,
    "time": _time,
    "blob": _blob,
    "inet": lambda text: ipaddress.ip_address(text.lstrip("/")),
}


def parse_literal(column: Column, text: object) -> object:
    """A clustering value as Debezium writes it in a range bound (the type's CQL string form)."""
    parse = _LITERALS.get(column.type.name)
    if parse is None or not isinstance(text, str):
        raise UnsupportedEvent(f"range bound on {column.name} of type {column.type.name} is not supported")
    try:
        return parse(text)
    except (ValueError, InvalidOperation) as error:
        raise ValueMappingError(f"range bound {column.name}={text!r}: {error}") from None

"""Real Debezium Cassandra 3.4.1.Final events (JSON converter) -> mutations, for every op; the same events
produced as Avro (wire format) decode to the same mutations."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import orjson
import pytest

from app.sink.decoding import RecordDecoder
from app.testing import cql_table, debezium_like_schemas, debezium_source
from app.testing import debezium_cell as cell
from models.avro import AvroReader, frame
from models.debezium import parse_json, to_mutation
from models.errors import (
    MalformedEvent,
    PermanentEventError,
    UnknownColumn,
    UnsupportedEvent,
    ValueMappingError,
)
from models.mutations import (
    Bound,
    BoundKind,
    CellWrite,
    Mutation,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
)

ITEMS = cql_table(
    "demo", "items", {"id": "int"}, {"seq": "int"}, {"name": "text", "qty": "int", "tags": "list<text>"}
)

TS = 1795686247803209
SOURCE = debezium_source("demo", "items", 1795686247803209)


def after(**cells: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(("id", "seq", "name", "qty", "tags", "_range_start", "_range_end"))
    base.update(cells)
    return base


def bound(method: str, *values: tuple[str, str]) -> dict[str, Any]:
    return {
        "method": method,
        "values": [
            {"name": n, "value": v, "type": "org.apache.cassandra.db.marshal.Int32Type"} for n, v in values
        ],
    }


def event(op: str, key: dict[str, Any], cells: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return key, {"ts_ms": 1795686248213, "op": op, "source": SOURCE, "after": cells}


EXPIRY = 1795686347803209
DELETED_AT = 1795686249994815
REGULAR = ("name", "qty", "tags")


def deleted(*columns: str) -> dict[str, Any]:
    """The cells of a row or partition delete: tombstones stamped ``DELETED_AT``."""
    return {column: cell(None, DELETED_AT) for column in columns}


def range_delete(start: dict[str, Any], end: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A range delete in partition ``id = 1``: the key's clustering is null, ``after`` has only the bounds."""
    return event("r", {"id": 1, "seq": None}, after(id=cell(1), _range_start=start, _range_end=end))


SAMPLES: dict[str, tuple[tuple[dict[str, Any], dict[str, Any]], Mutation]] = {
    "insert": (
        event(
            "i",
            {"id": 1, "seq": 1},
            after(id=cell(1), seq=cell(1), name=cell("apple"), qty=cell(3), tags=cell(["red"])),
        ),
        RowWrite(
            key=(1, 1),
            ts=TS,
            cells={"name": CellWrite("apple"), "qty": CellWrite(3), "tags": CellWrite(["red"])},
            marker=True,
            hint_columns=frozenset({"tags"}),
        ),
    ),
    "insert_with_ttl": (
        event(
            "i",
            {"id": 1, "seq": 2},
            after(id=cell(1), seq=cell(2), name=cell("pear", EXPIRY), qty=cell(5, EXPIRY), tags=cell(["g"])),
        ),
        RowWrite(
            key=(1, 2),
            ts=TS,
            cells={
                "name": CellWrite("pear", EXPIRY),
                "qty": CellWrite(5, EXPIRY),
                "tags": CellWrite(["g"]),
            },
            marker=True,
            marker_expires_at=EXPIRY,
            hint_columns=frozenset({"tags"}),
        ),
    ),
    "update": (
        event("u", {"id": 1, "seq": 1}, after(id=cell(1), seq=cell(1), qty=cell(4))),
        RowWrite(key=(1, 1), ts=TS, cells={"qty": CellWrite(4)}),
    ),
    "cell_delete": (
        event("u", {"id": 1, "seq": 1}, after(id=cell(1), seq=cell(1), name=cell(None))),
        RowWrite(key=(1, 1), ts=TS, cells={"name": CellWrite(None)}),
    ),
    "row_delete": (
        event("d", {"id": 1, "seq": 1}, after(id=cell(1), seq=cell(1), **deleted(*REGULAR))),
        RowDelete((1, 1), TS),
    ),
    "partition_delete": (
        event("d", {"id": 2, "seq": None}, after(id=cell(2), **deleted("seq", *REGULAR))),
        PartitionDelete((2,), TS),
    ),
    "range_delete_incl": (
        range_delete(bound("INCL_START_BOUND", ("seq", "3")), bound("INCL_END_BOUND")),
        RangeDelete((1,), Bound((3,), BoundKind.INCLUSIVE), Bound((), BoundKind.INCLUSIVE), TS),
    ),
    "range_delete_excl": (
        range_delete(bound("EXCL_START_BOUND", ("seq", "3")), bound("EXCL_END_BOUND", ("seq", "7"))),
        RangeDelete((1,), Bound((3,), BoundKind.EXCLUSIVE), Bound((7,), BoundKind.EXCLUSIVE), TS),
    ),
    "range_delete_open_start": (
        range_delete(bound("INCL_START_BOUND"), bound("EXCL_END_BOUND", ("seq", "-4"))),
        RangeDelete((1,), Bound((), BoundKind.INCLUSIVE), Bound((-4,), BoundKind.EXCLUSIVE), TS),
    ),
}


def json_bytes(sample: tuple[dict[str, Any], dict[str, Any]]) -> tuple[bytes, bytes]:
    key, value = sample
    return orjson.dumps(key), orjson.dumps(value)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_json_sample(name: str) -> None:
    sample, expected = SAMPLES[name]
    env = parse_json(*json_bytes(sample))
    assert env is not None
    assert to_mutation(ITEMS, env) == expected


# -- the same samples as Avro -----------------------------------------------------------------------------
KEY_SCHEMA, VALUE_SCHEMA = debezium_like_schemas(
    "demo",
    "items",
    key=[("id", "int"), ("seq", "int")],
    columns=[("name", "string"), ("qty", "int"), ("tags", {"type": "array", "items": "string"})],
)
AVRO = RecordDecoder(schemas={1: AvroReader(KEY_SCHEMA), 2: AvroReader(VALUE_SCHEMA)}.__getitem__)


def avro_bytes(sample: tuple[dict[str, Any], dict[str, Any]]) -> tuple[bytes, bytes]:
    key, value = sample
    parts = []
    for schema_id, schema, datum in ((1, KEY_SCHEMA, key), (2, VALUE_SCHEMA, value)):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(schema), datum)
        parts.append(frame(schema_id, out.getvalue()))
    return parts[0], parts[1]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_avro_sample(name: str) -> None:
    sample, expected = SAMPLES[name]
    env = AVRO(*avro_bytes(sample))
    assert env is not None
    assert env == parse_json(*json_bytes(sample))
    assert to_mutation(ITEMS, env) == expected


# -- permanent errors, by type -----------------------------------------------------------------------------
def mutated(name: str, change: Any) -> tuple[bytes, bytes]:
    key, value = copy.deepcopy(SAMPLES[name][0])
    change(key, value)
    return orjson.dumps(key), orjson.dumps(value)


def decode_json(key: bytes, value: bytes) -> Mutation:
    env = parse_json(key, value)
    assert env is not None
    return to_mutation(ITEMS, env)


def set_op(_: Any, value: dict[str, Any]) -> None:
    value["op"] = "t"


def drop_ts_us(_: Any, value: dict[str, Any]) -> None:
    del value["source"]["ts_us"]


def string_ts_us(_: Any, value: dict[str, Any]) -> None:
    value["source"]["ts_us"] = "1795686247803209"


def wrong_type(_: Any, value: dict[str, Any]) -> None:
    value["after"]["qty"] = cell("three")


def wrong_key_type(key: dict[str, Any], value: dict[str, Any]) -> None:
    value["after"]["id"] = cell("one")


def unknown_column(_: Any, value: dict[str, Any]) -> None:
    value["after"]["colour"] = cell("red")


def no_source(_: Any, value: dict[str, Any]) -> None:
    del value["source"]


def bad_bound(_: Any, value: dict[str, Any]) -> None:
    value["after"]["_range_start"] = bound("INCL_START_BOUND", ("seq", "three"))


@pytest.mark.parametrize(
    ("sample", "change", "error", "reason"),
    [
        ("insert", set_op, UnsupportedEvent, "unsupported_event"),
        ("insert", drop_ts_us, MalformedEvent, "malformed_event"),
        ("insert", string_ts_us, MalformedEvent, "malformed_event"),
        ("insert", no_source, MalformedEvent, "malformed_event"),
        ("update", wrong_type, ValueMappingError, "value_mapping_error"),
        ("update", wrong_key_type, ValueMappingError, "value_mapping_error"),
        ("insert", unknown_column, UnknownColumn, "unknown_column"),
        ("range_delete_incl", bad_bound, ValueMappingError, "value_mapping_error"),
    ],
)
def test_typed_errors(sample: str, change: Any, error: type[PermanentEventError], reason: str) -> None:
    with pytest.raises(error) as caught:
        decode_json(*mutated(sample, change))
    assert caught.value.reason == reason


@pytest.mark.parametrize("value", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"text"', b"null"])
def test_non_json_or_non_object(value: bytes) -> None:
    with pytest.raises(MalformedEvent):
        decode_json(b'{"id": 1}', value)
    with pytest.raises(MalformedEvent):
        RecordDecoder(None)(b'{"id": 1}', value)


def test_non_json_key() -> None:
    with pytest.raises(MalformedEvent):
        parse_json(b"{", json_bytes(SAMPLES["insert"][0])[1])

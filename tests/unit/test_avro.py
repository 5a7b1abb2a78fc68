"""Avro in the Confluent wire format: framing, decoding, normalisation to the JSON converter's shape, routing."""

from __future__ import annotations

import io
import math
import socket
from decimal import Decimal
from typing import Any

import fastavro
import orjson
import pytest

from app.sink.decoding import RecordDecoder, RegistryUnavailable
from app.sink.failures import is_transient
from app.testing import debezium_cell as cell
from app.testing import debezium_like_schemas, debezium_source
from models.avro import (
    AvroReader,
    frame,
    is_wire_format,
    parse_wire_format,
    strip_logical_types,
)
from models.debezium import parse_json
from models.errors import AvroDecodeError, AvroWithoutRegistry, MalformedEvent

SOURCE = debezium_source("demo", "items", 1795686247803209)


def encode(schema: Any, datum: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), datum)
    return out.getvalue()


# -- wire format -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00\x00"])
def test_too_short(data: bytes) -> None:
    with pytest.raises(AvroDecodeError, match="shorter than the 5-byte header"):
        parse_wire_format(data)


def test_wrong_magic() -> None:
    with pytest.raises(AvroDecodeError, match="wrong magic byte 0x01"):
        parse_wire_format(b"\x01\x00\x00\x00\x07abc")


def test_header_and_payload() -> None:
    schema_id, payload = parse_wire_format(b"\x00\x00\x01\x00\x02xyz")
    assert schema_id == 65538
    assert bytes(payload) == b"xyz"
    assert parse_wire_format(frame(2**32 - 1, b""))[0] == 2**32 - 1
    assert bytes(parse_wire_format(frame(7, b"\x02"))[1]) == b"\x02"


def test_is_wire_format() -> None:
    assert is_wire_format(b"\x00")
    assert not is_wire_format(b'{"a": 1}')
    assert not is_wire_format(b"")
    assert not is_wire_format(None)


# -- reader ------------------------------------------------------------------------------------------------
def test_schema_that_does_not_parse() -> None:
    with pytest.raises(AvroDecodeError, match="writer schema does not parse"):
        AvroReader({"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]})
    with pytest.raises(AvroDecodeError, match="not JSON"):
        AvroReader("{not json")


def test_bad_payloads() -> None:
    reader = AvroReader({"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]})
    assert reader.decode(encode(reader.schema, {"s": "héllo"})) == {"s": "héllo"}
    with pytest.raises(AvroDecodeError, match="does not decode"):
        reader.decode(b"")  # truncated
    with pytest.raises(AvroDecodeError, match="does not decode"):
        reader.decode(b"\x04\xff\xfe")  # not UTF-8
    with pytest.raises(AvroDecodeError, match="2 bytes left"):
        reader.decode(encode(reader.schema, {"s": "x"}) + b"\x00\x00")
    union = AvroReader({"type": "record", "name": "U", "fields": [{"name": "u", "type": ["null", "int"]}]})
    with pytest.raises(AvroDecodeError, match="does not decode"):
        union.decode(b"\x08\x02")  # branch index 4 of 2


def test_strip_logical_types_keeps_decimal() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "d", "type": ["null", {"type": "int", "logicalType": "date"}]},
            {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "n", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "a", "type": {"type": "array", "items": {"type": "long", "logicalType": "time-micros"}}},
        ],
    }
    stripped = strip_logical_types(schema)
    assert [f["type"] for f in stripped["fields"][:3]] == [
        {"type": "long"},
        ["null", {"type": "int"}],
        {"type": "string"},
    ]
    assert stripped["fields"][3]["type"]["logicalType"] == "decimal"
    assert stripped["fields"][4]["type"]["items"] == {"type": "long"}
    reader = AvroReader(schema)
    payload = encode(
        schema,
        {
            "t": 1562202942545,
            "d": 19000,
            "u": "8f14e45f-ceea-467a-9575-8ec2b0c1c1c1",
            "n": Decimal("1.10"),
            "a": [5],
        },
    )
    assert reader.decode(payload) == {
        "t": 1562202942545,
        "d": 19000,
        "u": "8f14e45f-ceea-467a-9575-8ec2b0c1c1c1",
        "n": Decimal("1.10"),
        "a": [5],
    }


def test_normalisation_to_json_shape() -> None:
    map_entry = {
        "type": "record",
        "name": "MapEntry",
        "namespace": "io.confluent.connect.avro",
        "fields": [{"name": "key", "type": "int"}, {"name": "value", "type": ["null", "bytes"]}],
    }
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "b", "type": ["null", "bytes"]},
            {"name": "f", "type": "float"},
            {"name": "nan", "type": "double"},
            {"name": "inf", "type": ["null", "float"]},
            {"name": "m", "type": {"type": "array", "items": map_entry}},
            {"name": "sm", "type": {"type": "map", "values": "float"}},
            {"name": "fx", "type": {"type": "fixed", "name": "F2", "size": 2}},
            {"name": "again", "type": {"type": "array", "items": "io.confluent.connect.avro.MapEntry"}},
            {"name": "either", "type": ["null", "long", "bytes"]},
            {"name": "plain", "type": "long"},
        ],
    }
    datum = {
        "b": b"\x00\xff",
        "f": 0.1,
        "nan": math.nan,
        "inf": -math.inf,
        "m": [{"key": 2, "value": b"hi"}, {"key": 1, "value": None}],
        "sm": {"a": 1.1},
        "fx": b"ab",
        "again": [],
        "either": b"z",
        "plain": 2**53 + 1,
    }
    decoded = AvroReader(schema).decode(encode(schema, datum))
    assert decoded == {
        "b": "AP8=",
        "f": 0.1,
        "nan": "NaN",
        "inf": "-Infinity",
        "m": [[2, "aGk="], [1, None]],
        "sm": {"a": 1.1},
        "fx": "YWI=",
        "again": [],
        "either": "eg==",
        "plain": 2**53 + 1,
    }


def test_plain_schema_has_no_second_pass() -> None:
    reader = AvroReader({"type": "record", "name": "P", "fields": [{"name": "i", "type": ["null", "int"]}]})
    assert reader._normalise is None


# -- the Debezium envelope: Avro and JSON give the same Envelope ------------------------------------------
ITEMS_KEY, ITEMS_VALUE = debezium_like_schemas(
    "demo",
    "items",
    key=[("id", "int"), ("seq", "int")],
    columns=[
        ("name", "string"),
        ("qty", "int"),
        ("tags", {"type": "array", "items": "string"}),
        ("data", "bytes"),
        ("at", {"type": "long", "logicalType": "timestamp-millis"}),
        ("ratio", "float"),
        ("scores", {"type": "array", "items": {
            "type": "record", "name": "MapEntry", "namespace": "io.confluent.connect.avro",
            "fields": [{"name": "key", "type": "int"}, {"name": "value", "type": ["null", "string"]}],
        }}),
    ],
)  # fmt: skip

JSON_AFTER = {
    "id": cell(1),
    "seq": cell(1),
    "name": cell("apple", 1795686347803209),
    "qty": cell(3),
    "tags": cell(["red"]),
    "data": cell("AAEC"),
    "at": cell(1562202942545),
    "ratio": cell(0.1),
    "scores": cell([[1, "a"], [2, None]]),
    "_range_start": None,
    "_range_end": None,
}
AVRO_AFTER = {
    **JSON_AFTER,
    "data": cell(b"\x00\x01\x02"),
    "scores": cell([{"key": 1, "value": "a"}, {"key": 2, "value": None}]),
}
RANGE_AFTER = {
    "id": cell(1),
    "seq": None,
    "name": None,
    "qty": None,
    "tags": None,
    "data": None,
    "at": None,
    "ratio": None,
    "scores": None,
    "_range_start": {
        "method": "EXCL_START_BOUND",
        "values": [{"name": "seq", "value": "3", "type": "org.apache.cassandra.db.marshal.Int32Type"}],
    },
    "_range_end": {"method": "INCL_END_BOUND", "values": []},
}


def reader_lookup(schemas: dict[int, Any]) -> Any:
    readers = {schema_id: AvroReader(schema) for schema_id, schema in schemas.items()}
    return readers.__getitem__


@pytest.mark.parametrize(
    ("op", "key", "json_after", "avro_after"),
    [
        ("i", {"id": 1, "seq": 1}, JSON_AFTER, AVRO_AFTER),
        ("r", {"id": 1, "seq": None}, RANGE_AFTER, RANGE_AFTER),
    ],
)
def test_avro_envelope_equals_json_envelope(
    op: str, key: dict[str, Any], json_after: dict[str, Any], avro_after: dict[str, Any]
) -> None:
    json_value = {"ts_ms": 1795686248213, "op": op, "source": SOURCE, "after": json_after}
    avro_value = {**json_value, "after": avro_after}
    decode = RecordDecoder(schemas=reader_lookup({11: ITEMS_KEY, 12: ITEMS_VALUE}))
    from_avro = decode(frame(11, encode(ITEMS_KEY, key)), frame(12, encode(ITEMS_VALUE, avro_value)))
    from_json = parse_json(orjson.dumps(key), orjson.dumps(json_value))
    assert from_avro == from_json
    assert from_avro is not None
    assert from_avro.ts_us == 1795686247803209
    assert (from_avro.keyspace, from_avro.table, from_avro.op, from_avro.snapshot) == (
        "demo",
        "items",
        op,
        False,
    )


def test_json_key_with_avro_value() -> None:
    value = {"ts_ms": 1, "op": "i", "source": SOURCE, "after": AVRO_AFTER}
    decode = RecordDecoder(schemas=reader_lookup({12: ITEMS_VALUE}))
    env = decode(b'{"id": 1, "seq": 1}', frame(12, encode(ITEMS_VALUE, value)))
    assert env is not None
    assert env.key == {"id": 1, "seq": 1}
    assert env.after["data"] == cell("AAEC")


# -- routing -----------------------------------------------------------------------------------------------
def test_json_without_registry() -> None:
    value = {"ts_ms": 1, "op": "i", "source": SOURCE, "after": JSON_AFTER}
    env = RecordDecoder(None)(b'{"id": 1, "seq": 1}', orjson.dumps(value))
    assert env == parse_json(b'{"id": 1, "seq": 1}', orjson.dumps(value))


def test_tombstone() -> None:
    assert RecordDecoder(None)(b"\x00\x00\x00\x00\x01", None) is None


def test_avro_without_registry_is_dead_lettered() -> None:
    with pytest.raises(AvroWithoutRegistry, match="schema id 5") as caught:
        RecordDecoder(None)(b"{}", frame(5, b"\x00"))
    assert caught.value.reason == "avro_without_registry"


def test_short_avro_value_and_bad_json() -> None:
    with pytest.raises(AvroDecodeError):
        RecordDecoder(None)(None, b"\x00\x01")
    with pytest.raises(MalformedEvent, match="neither Avro nor JSON"):
        RecordDecoder(schemas=reader_lookup({12: ITEMS_VALUE}))(b"nope", frame(12, b""))
    with pytest.raises(MalformedEvent, match="not JSON"):
        RecordDecoder(None)(None, b"\x01garbage")


def test_truncated_avro_value() -> None:
    decode = RecordDecoder(schemas=reader_lookup({12: ITEMS_VALUE}))
    with pytest.raises(AvroDecodeError):
        decode(None, frame(12, b"\x02"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_registry_is_transient() -> None:
    decode = RecordDecoder(f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7")
    with pytest.raises(RegistryUnavailable, match="unreachable") as caught:
        decode(None, frame(3, b"\x00"))
    assert isinstance(caught.value, ConnectionError)
    assert is_transient(caught.value)

"""A lossless JSON encoding of key values (for tombstone bounds and DLQ records).

Each value is tagged with its Python type so it decodes to an equal value: ``{"t": "uuid", "v": "..."}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import uuid
from decimal import Decimal
from typing import Any

from models.cql_types import JsonbValue

_ENCODERS: list[tuple[type, str, Any]] = [
    (bool, "bool", lambda v: v),
    (int, "int", str),
    (float, "float", repr),
    (str, "str", lambda v: v),
    (Decimal, "dec", str),
    (uuid.UUID, "uuid", str),
    (dt.datetime, "ts", lambda v: v.isoformat()),
    (dt.date, "date", lambda v: v.isoformat()),
    (dt.time, "time", lambda v: v.isoformat()),
    (dt.timedelta, "td", lambda v: [v.days, v.seconds, v.microseconds]),
    (bytes, "bytes", lambda v: base64.b64encode(v).decode()),
    (ipaddress.IPv4Address, "inet", str),
    (ipaddress.IPv6Address, "inet", str),
]

_DECODERS: dict[str, Any] = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "dec": Decimal,
    "uuid": uuid.UUID,
    "ts": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "td": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "bytes": base64.b64decode,
    "inet": ipaddress.ip_address,
}


def encode_value(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return {"t": "list", "v": [encode_value(v) for v in value]}
    if isinstance(value, dict):
        return {"t": "json", "v": value}
    for typ, tag, enc in _ENCODERS:
        if isinstance(value, typ):
            return {"t": tag, "v": enc(value)}
    if isinstance(value, JsonbValue):
        return {"t": "json", "v": value.obj}
    raise TypeError(f"cannot encode key value of type {type(value).__name__}")


def decode_value(data: object) -> object:
    if data is None:
        return None
    if not isinstance(data, dict) or "t" not in data:
        raise ValueError(f"not an encoded key value: {data!r}")
    tag, raw = data["t"], data["v"]
    if tag == "list":
        return [decode_value(v) for v in raw]
    if tag == "json":
        return raw
    return _DECODERS[tag](raw)


def encode_key(values: tuple[object, ...]) -> list[object]:
    return [encode_value(v) for v in values]


def decode_key(data: list[object]) -> tuple[object, ...]:
    return tuple(decode_value(v) for v in data)

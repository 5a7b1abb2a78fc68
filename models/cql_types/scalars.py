"""Scalars that Debezium and cassandra-driver hand over alike: text, integers, floats, boolean, blob, uuid, inet.

Each converter takes the column type and the raw value and returns the canonical Python value, or raises a
``ValueError`` (:func:`models.cql_types.value_errors.bad_value`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import struct
import uuid
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

from models.cql_types.parsing import CqlType, Native
from models.cql_types.value_errors import bad_value

IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
ScalarConverter: TypeAlias = Callable[[CqlType, object], Native]

_INT_BITS: Final[Mapping[str, int]] = {"tinyint": 8, "smallint": 16, "int": 32, "bigint": 64, "counter": 64}
INT_RANGE: Final[Mapping[str, tuple[int, int]]] = {
    name: (-(2 ** (bits - 1)), 2 ** (bits - 1)) for name, bits in _INT_BITS.items()
}
"""``lo <= value < hi`` per fixed-width type (computed once: this check runs for every integer cell)."""
_FLOAT_WORDS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def integer_value(t: CqlType, value: object) -> int:
    """An int (not a bool), range-checked for the fixed-width integer types."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_value(t, value, "expected an integer")
    bounds = INT_RANGE.get(t.name)
    if bounds is not None and not bounds[0] <= value < bounds[1]:
        raise bad_value(t, value, f"out of range for a {_INT_BITS[t.name]}-bit integer")
    return value


def text_value(t: CqlType, value: object) -> str:
    if not isinstance(value, str):
        raise bad_value(t, value, "expected a string")
    if t.name == "ascii" and not value.isascii():
        raise bad_value(t, value, "non-ASCII character in ascii")
    return value


def float_value(t: CqlType, value: object) -> float:
    """Numbers, or Jackson's "NaN"/"Infinity"/"-Infinity"; float values are canonicalised to float32."""
    if isinstance(value, str) and value in _FLOAT_WORDS:
        number = _FLOAT_WORDS[value]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise bad_value(t, value, "expected a number or NaN/Infinity/-Infinity")
    if t.name == "float":
        try:
            return _float32_canonical(number)
        except OverflowError:
            raise bad_value(t, value, "out of range for float32") from None
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


def bool_value(t: CqlType, value: object) -> bool:
    if not isinstance(value, bool):
        raise bad_value(t, value, "expected true/false")
    return value


def bytes_value(t: CqlType, value: object) -> bytes:
    """base64 text (JSON) or bytes (Avro / driver)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise bad_value(t, value, "invalid base64") from None
    raise bad_value(t, value, "expected base64 text or bytes")


def uuid_value(t: CqlType, value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        result = value
    elif isinstance(value, str):
        try:
            result = uuid.UUID(value)
        except ValueError:
            raise bad_value(t, value, "not a UUID") from None
    else:
        raise bad_value(t, value, "expected a UUID string")
    if t.name == "timeuuid" and (result.int >> 76) & 0xF != 1:
        raise bad_value(t, value, "timeuuid must be a version 1 UUID")
    return result


def inet_value(t: CqlType, value: object) -> IpAddress:
    """``"/1.2.3.4"`` or ``"host/1.2.3.4"`` (Java) or a bare address; IPv4-mapped IPv6 -> IPv4."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address: IpAddress = value
    elif isinstance(value, str):
        try:
            address = ipaddress.ip_address(value.rsplit("/", 1)[-1])
        except ValueError:
            raise bad_value(t, value, "not an IP address") from None
    else:
        raise bad_value(t, value, "expected an IP address string")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


SHARED_SCALARS: Final[Mapping[str, ScalarConverter]] = {
    "text": text_value,
    "ascii": text_value,
    "tinyint": integer_value,
    "smallint": integer_value,
    "int": integer_value,
    "bigint": integer_value,
    "counter": integer_value,
    "float": float_value,
    "double": float_value,
    "boolean": bool_value,
    "blob": bytes_value,
    "uuid": uuid_value,
    "timeuuid": uuid_value,
    "inet": inet_value,
}
"""The converter of each scalar whose Debezium and driver values have the same shapes."""

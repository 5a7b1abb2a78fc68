"""decimal and varint (PostgreSQL ``numeric``): the encodings Debezium's handling modes produce, and the
driver's values; always exact."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from models.cql_types.parsing import CqlType
from models.cql_types.scalars import bytes_value, integer_value
from models.cql_types.value_errors import bad_value


@dataclass(frozen=True)
class DebeziumModes:
    """How the agent was configured to encode decimal and varint values.

    ``auto`` accepts every unambiguous encoding: decimal as a PRECISE struct, a STRING or an Avro Decimal
    (never a float -- DOUBLE mode has already lost digits); varint as a number, a decimal string, or else a
    base64 string (PRECISE with JsonConverter's default ``decimal.format=BASE64``).  A digit-only string is
    read as decimal in ``auto``; name the mode explicitly if the agent runs PRECISE with base64.
    """

    decimal: Literal["auto", "precise", "string", "double"] = "auto"
    varint: Literal["auto", "long", "precise", "string"] = "auto"


def _decimal_checked(t: CqlType, value: Decimal) -> Decimal:
    if not value.is_finite():
        raise bad_value(t, value, "decimal must be finite")
    return value


def _decimal_from_struct(t: CqlType, value: Mapping[str, object]) -> Decimal:
    """Debezium VariableScaleDecimal {"scale": s, "value": unscaled two's complement} -> exact Decimal."""
    scale = integer_value(CqlType("int"), value.get("scale"))
    unscaled = int.from_bytes(bytes_value(t, value.get("value")), "big", signed=True)
    digits = tuple(int(d) for d in str(abs(unscaled)))
    return Decimal((1 if unscaled < 0 else 0, digits, -scale))


def decimal_from_debezium(t: CqlType, value: object, modes: DebeziumModes) -> Decimal:
    mode = modes.decimal
    if isinstance(value, Mapping) and mode in ("auto", "precise"):
        return _decimal_from_struct(t, value)
    if isinstance(value, str) and mode in ("auto", "string"):
        try:
            return _decimal_checked(t, Decimal(value))
        except InvalidOperation:
            raise bad_value(t, value, "not a decimal string") from None
    if isinstance(value, Decimal) and mode != "double":
        return _decimal_checked(t, value)
    if isinstance(value, int) and not isinstance(value, bool) and mode != "double":
        return Decimal(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and mode == "double":
        return _decimal_checked(t, Decimal(repr(float(value))))
    hint = (
        " (a float: set decimal.handling.mode=precise or string on the agent)"
        if isinstance(value, float)
        else ""
    )
    raise bad_value(t, value, f"not a decimal encoding for mode {mode}{hint}")


def varint_from_debezium(t: CqlType, value: object, modes: DebeziumModes) -> int:
    mode = modes.varint
    if isinstance(value, int) and not isinstance(value, bool) and mode in ("auto", "long", "precise"):
        return value
    if isinstance(value, Decimal) and mode in ("auto", "precise"):
        if value != value.to_integral_value():
            raise bad_value(t, value, "varint must be integral")
        return int(value)
    if isinstance(value, str) and mode in ("auto", "string") and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if isinstance(value, (str, bytes)) and mode in ("auto", "precise"):
        return int.from_bytes(bytes_value(t, value), "big", signed=True)
    raise bad_value(t, value, f"not a varint encoding for mode {mode}")


def decimal_from_driver(t: CqlType, value: object) -> Decimal:
    if isinstance(value, Decimal):
        return _decimal_checked(t, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise bad_value(t, value, "expected a Decimal")


def varint_from_driver(t: CqlType, value: object) -> int:
    return integer_value(t, value)

"""Unit tests for models.cql_types.numeric: decimal and varint in every Debezium handling mode."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from cassandra import cqltypes
from hypothesis import given
from hypothesis import strategies as st

from models.cql_types import (
    DebeziumModes,
    cell_order_bytes,
    from_debezium,
    from_driver,
    parse_cql_type,
    to_json_compatible,
)
from models.errors import ValueMappingError
from tests.cql_values import both, driver_value


def test_varint_encodings() -> None:
    big = -98765432109876543210
    t = parse_cql_type("varint")
    assert both("varint", str(big), big) == big
    two_complement = big.to_bytes(9, "big", signed=True)
    assert (
        from_debezium(t, base64.b64encode(two_complement).decode(), modes=DebeziumModes(varint="precise"))
        == big
    )
    assert from_debezium(t, Decimal(big)) == big
    assert from_debezium(t, -5) == -5
    # the agent's default LONG mode wrapped 123456789012345678901234567890 to its low 64 bits (live event)
    assert from_debezium(t, -4362896299872285998) == -4362896299872285998
    with pytest.raises(ValueMappingError):
        from_debezium(t, "12x")
    with pytest.raises(ValueMappingError):
        from_debezium(t, "12", modes=DebeziumModes(varint="long"))


def test_decimal_precise_struct_exact() -> None:
    value = Decimal("-12345678901234567890123456789012345678901234567890.0000000000000000000001")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    unscaled = int("".join(map(str, digits))) * (-1 if sign else 1)
    raw = {"scale": -exponent, "value": base64.b64encode(unscaled.to_bytes(40, "big", signed=True)).decode()}
    result = both("decimal", raw, value)
    assert isinstance(result, Decimal)
    assert result.as_tuple() == value.as_tuple()


def test_decimal_string_and_negative_scale() -> None:
    assert both("decimal", "12345678901234567890.123456789", Decimal("12345678901234567890.123456789"))
    assert both("decimal", "-0.000000000000000000000000000001", Decimal("-1E-30")) == Decimal("-1E-30")
    raw = {"scale": -10, "value": base64.b64encode(b"\x01").decode()}
    assert both("decimal", raw, Decimal("1E+10")) == Decimal("1E+10")


def test_decimal_refuses_floats_unless_double_mode() -> None:
    t = parse_cql_type("decimal")
    with pytest.raises(ValueMappingError, match=r"decimal\.handling\.mode"):
        from_debezium(t, 1.2345678901234567e19)
    lossy = from_debezium(t, 1.2345678901234567e19, modes=DebeziumModes(decimal="double"))
    assert lossy == Decimal("1.2345678901234567E+19")
    with pytest.raises(ValueMappingError, match="finite"):
        from_debezium(t, "NaN")


def _precise_struct(value: Decimal) -> dict[str, object]:
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    size = max(1, (unscaled.bit_length() + 8) // 8)
    return {
        "scale": -exponent,
        "value": base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode(),
    }


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d.adjusted()) < 400)
)
def test_decimal_round_trip_is_exact(value: Decimal) -> None:
    t = parse_cql_type("decimal")
    from_struct = from_debezium(t, _precise_struct(value))
    assert isinstance(from_struct, Decimal)
    assert from_struct.as_tuple()[1:] == value.as_tuple()[1:]
    assert from_struct == value
    assert from_debezium(t, format(value, "f")) == value
    assert from_driver(t, driver_value("decimal", value)) == from_struct
    assert cell_order_bytes(t, from_struct) == bytes(cqltypes.DecimalType.serialize(value, 5))


@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_varint_round_trip(value: int) -> None:
    t = parse_cql_type("varint")
    size = max(1, (value.bit_length() + 8) // 8)
    encoded = base64.b64encode(value.to_bytes(size, "big", signed=True)).decode()
    assert from_debezium(t, encoded, modes=DebeziumModes(varint="precise")) == value
    assert from_debezium(t, str(value)) == value == from_driver(t, driver_value("varint", value))
    assert json.loads(json.dumps(to_json_compatible(t, value))) in (value, str(value))

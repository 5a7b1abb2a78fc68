"""A Debezium event value or a cassandra-driver value -> the *same* Python value for the PostgreSQL column.

:func:`from_debezium` and :func:`from_driver` agree for equal data, so values read from either side compare
equal; :func:`debezium_converter` is :func:`from_debezium` resolved once per column (the decoding hot path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from models.cql_types.numeric import (
    DebeziumModes,
    decimal_from_debezium,
    decimal_from_driver,
    varint_from_debezium,
    varint_from_driver,
)
from models.cql_types.parsing import CqlType, Native, is_scalar
from models.cql_types.scalars import INT_RANGE, SHARED_SCALARS, ScalarConverter
from models.cql_types.structures import finish, to_native
from models.cql_types.temporal import (
    date_from_days,
    date_from_driver,
    duration_from_driver,
    duration_from_nanos,
    time_from_driver,
    time_from_nanos,
    timestamp_from_driver,
    timestamp_from_millis,
)
from models.cql_types.value_errors import CONVERSION_ERRORS, convert_or_raise, mapping_error
from models.errors import ValueMappingError

_DEFAULT_MODES: Final = DebeziumModes()

_DEBEZIUM_SCALARS: Final[Mapping[str, ScalarConverter]] = {
    **SHARED_SCALARS,
    "date": date_from_days,
    "time": time_from_nanos,
    "timestamp": timestamp_from_millis,
    "duration": duration_from_nanos,
}
"""Debezium scalars whose encoding does not depend on :class:`DebeziumModes` (all but decimal, varint)."""

_DRIVER_SCALARS: Final[Mapping[str, ScalarConverter]] = {
    **SHARED_SCALARS,
    "varint": varint_from_driver,
    "decimal": decimal_from_driver,
    "date": date_from_driver,
    "time": time_from_driver,
    "timestamp": timestamp_from_driver,
    "duration": duration_from_driver,
}


def _scalar_from_debezium(t: CqlType, raw: object, modes: DebeziumModes) -> Native:
    if t.name == "decimal":
        return decimal_from_debezium(t, raw, modes)
    if t.name == "varint":
        return varint_from_debezium(t, raw, modes)
    return _DEBEZIUM_SCALARS[t.name](t, raw)


def _scalar_from_driver(t: CqlType, value: object) -> Native:
    return _DRIVER_SCALARS[t.name](t, value)


def from_debezium(t: CqlType, raw: object, *, modes: DebeziumModes = _DEFAULT_MODES) -> object:
    """Debezium ``after.<col>.value`` (JSON-decoded, or fastavro-decoded) -> the column's Python value.

    See ``docs/type-mapping.md`` for each type; raises :class:`ValueMappingError` when ``raw`` does not fit.
    """
    if raw is None:
        return None
    if is_scalar(t):  # the hot path: a scalar needs no walk and no finishing
        try:
            return _scalar_from_debezium(t, raw, modes)
        except ValueMappingError:
            raise
        except CONVERSION_ERRORS as error:
            raise mapping_error(t, raw, error) from error

    def scalar(sub: CqlType, value: object) -> Native:
        return _scalar_from_debezium(sub, value, modes)

    return convert_or_raise(t, raw, lambda: finish(t, to_native(t, raw, scalar, "debezium")))


def debezium_converter(t: CqlType, modes: DebeziumModes = _DEFAULT_MODES) -> Callable[[object], object]:
    """:func:`from_debezium` for one column type, resolved once (the per-event hot path of decoding)."""
    if not is_scalar(t):
        return lambda raw: from_debezium(t, raw, modes=modes)
    fixed = _DEBEZIUM_SCALARS.get(t.name)

    def convert(raw: object) -> object:
        if raw is None:
            return None
        try:
            return fixed(t, raw) if fixed is not None else _scalar_from_debezium(t, raw, modes)
        except ValueMappingError:
            raise
        except CONVERSION_ERRORS as error:
            raise mapping_error(t, raw, error) from error

    return convert


def from_driver(t: CqlType, value: object) -> object:
    """cassandra-driver result value -> exactly what :func:`from_debezium` gives for the same data
    (durations collapsed the way Debezium does, inet IPv4-mapped -> IPv4, timestamps to milliseconds)."""
    return convert_or_raise(t, value, lambda: finish(t, to_native(t, value, _scalar_from_driver, "driver")))


def driver_converter(t: CqlType) -> Callable[[object], object]:
    """:func:`from_driver` for one column type, resolved once (the per-row hot path of a backfill scan)."""
    if not is_scalar(t):
        return lambda value: None if value is None else from_driver(t, value)
    fixed = _DRIVER_SCALARS[t.name]
    bounds = INT_RANGE.get(t.name)
    plain = str if t.name in ("text", "varchar") else None  # (ascii is checked by its converter)

    def convert(value: object) -> object:
        if value is None:
            return None
        kind = type(value)
        if kind is plain or (kind is int and bounds is not None and bounds[0] <= value < bounds[1]):  # type: ignore[operator]
            return value  # the common cases, as the converter would return them
        try:
            return fixed(t, value)
        except ValueMappingError:
            raise
        except CONVERSION_ERRORS as error:
            raise mapping_error(t, value, error) from error

    return convert

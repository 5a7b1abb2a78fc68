"""How a value that does not fit its type is reported.

Converters raise a plain ``ValueError`` (:func:`bad_value`); the package's entry points turn it, and any
conversion error, into one :class:`models.errors.ValueMappingError` naming the CQL type and the value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from models.cql_types.parsing import CqlType, format_cql_type
from models.errors import ValueMappingError

CONVERSION_ERRORS: Final = (ValueError, TypeError, OverflowError, ArithmeticError)
"""What a converter may raise for a value that does not fit."""


def short_repr(value: object) -> str:
    """``repr`` cut to 200 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def bad_value(t: CqlType, value: object, reason: str) -> ValueError:
    return ValueError(f"{format_cql_type(t)} value {short_repr(value)}: {reason}")


def mapping_error(t: CqlType, raw: object, error: Exception) -> ValueMappingError:
    return ValueMappingError(f"cannot map {short_repr(raw)} to CQL {format_cql_type(t)}: {error}")


def convert_or_raise(t: CqlType, raw: object, convert: Callable[[], object]) -> object:
    """``convert()``, with conversion errors raised as :class:`ValueMappingError`."""
    try:
        return convert()
    except ValueMappingError:
        raise
    except CONVERSION_ERRORS as error:
        raise mapping_error(t, raw, error) from error

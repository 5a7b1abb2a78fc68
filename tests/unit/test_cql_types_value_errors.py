"""Unit tests for models.cql_types.value_errors: how a value that does not fit is reported."""

from __future__ import annotations

import pytest

from models.cql_types import (
    from_debezium,
    from_driver,
    parse_cql_type,
)
from models.errors import PermanentEventError, ValueMappingError


def test_error_message_names_type_and_value() -> None:
    with pytest.raises(ValueMappingError) as info:
        from_debezium(parse_cql_type("frozen<list<tinyint>>"), [1, 300])
    assert "frozen<list<tinyint>>" in str(info.value)
    assert "300" in str(info.value)


def test_mapping_errors_dead_letter_as_value_mapping_error() -> None:
    with pytest.raises(PermanentEventError) as info:
        from_driver(parse_cql_type("int"), "x")
    assert info.value.reason == "value_mapping_error"

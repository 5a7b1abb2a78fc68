"""Unit tests for app.sink.store's pure parts: how values are adapted for psycopg."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from app.sink.store import _adapt
from models.cql_types import JsonbValue
from models.mirror_spec import ColumnSpec


def test_jsonb_documents_are_unwrapped_for_psycopg() -> None:
    document = JsonbValue({"a": [1, 2]})
    for column in (ColumnSpec("m", "jsonb"), None):
        adapted = _adapt(column, "m", document)
        assert isinstance(adapted, Jsonb)
        assert adapted.obj == {"a": [1, 2]}
    plain = _adapt(ColumnSpec("m", "jsonb"), "m", [1])
    assert isinstance(plain, Jsonb)
    assert plain.obj == [1]
    assert _adapt(ColumnSpec("i", "integer"), "i", 5) == 5

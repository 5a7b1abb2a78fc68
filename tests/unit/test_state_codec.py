"""models.state_codec: row state <-> the mirror's columns."""

from __future__ import annotations

from app.testing import cql_table
from models.convergence import Cell, Marker, RowState
from models.mirror_spec import spec_for
from models.state_codec import STATE_COLUMNS, mirror_columns, mirror_row, row_reader

SPEC = spec_for(
    cql_table("ks", "t", {"p": "int"}, {"c": "text"}, {"a": "int", "b": "frozen<map<int, int>>"}),
    'ks.we"ird',
)


def test_state_codec_round_trip() -> None:
    row = RowState(cells={"a": Cell(3, 7, 100), "b": Cell(4, None)}, marker=Marker(3, 100), deleted_ts=2)
    stored = dict(zip(mirror_columns(SPEC), mirror_row(SPEC, (1, "x"), row, now_us=50), strict=True))
    assert (stored["a"], stored["b"], stored["_cdc_expires_at"]) == (7, None, 100)
    key, decoded = row_reader(SPEC, list(stored))(list(stored.values()))
    assert key == (1, "x")
    assert decoded == row


def test_a_dead_row_is_read_without_value_columns() -> None:
    row = RowState(cells={"a": Cell(3, None), "b": Cell(4, None)}, marker=None, deleted_ts=5)
    stored = dict(zip(mirror_columns(SPEC), mirror_row(SPEC, (1, "x"), row, now_us=50), strict=True))
    columns = ["p", "c", *STATE_COLUMNS]
    key, decoded = row_reader(SPEC, columns)([stored[c] for c in columns])
    assert (key, decoded) == ((1, "x"), row)

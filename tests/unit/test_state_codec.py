"""models.state_codec: row state <-> the mirror's columns."""

from __future__ import annotations

from app.testing import cql_table
from models.convergence import Cell, Marker, RowState
from models.mirror_spec import spec_for
from models.state_codec import decode_row, mirror_values

SPEC = spec_for(
    cql_table("ks", "t", {"p": "int"}, {"c": "text"}, {"a": "int", "b": "frozen<map<int, int>>"}),
    'ks.we"ird',
)


def test_state_codec_round_trip() -> None:
    row = RowState(cells={"a": Cell(3, 7, 100), "b": Cell(4, None)}, marker=Marker(3, 100), deleted_ts=2)
    stored = mirror_values(SPEC, (1, "x"), row, now_us=50)
    assert (stored["a"], stored["b"], stored["_cdc_expires_at"]) == (7, None, 100)
    key, decoded = decode_row(SPEC, stored)
    assert key == (1, "x")
    assert decoded == row

"""models.state_codec: row state <-> the mirror's columns."""

from __future__ import annotations

from models.convergence import Cell, Marker, RowState
from models.cql_types import parse_cql_type
from models.mirror_spec import spec_for
from models.state_codec import decode_row, mirror_values
from models.table_schema import Column, TableSchema

SPEC = spec_for(
    TableSchema(
        keyspace="ks",
        table="t",
        partition_key=(Column("p", parse_cql_type("int")),),
        clustering=(Column("c", parse_cql_type("text")),),
        columns=(Column("a", parse_cql_type("int")), Column("b", parse_cql_type("frozen<map<int, int>>"))),
    ),
    'ks.we"ird',
)


def test_state_codec_round_trip() -> None:
    row = RowState(cells={"a": Cell(3, 7, 100), "b": Cell(4, None)}, marker=Marker(3, 100), deleted_ts=2)
    stored = mirror_values(SPEC, (1, "x"), row, now_us=50)
    assert (stored["a"], stored["b"], stored["_cdc_expires_at"]) == (7, None, 100)
    key, decoded = decode_row(SPEC, stored)
    assert key == (1, "x")
    assert decoded == row

"""Property: random histories, duplicated, shuffled and split into random batches, applied through the real
apply path into real PostgreSQL, leave the mirror equal to the reference model."""

from __future__ import annotations

import random
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from app.sink.apply import apply_mutations
from app.sink.spec import ColumnSpec, MirrorSpec
from app.sink.store import MirrorStore
from models.mutations import (
    Bound,
    BoundKind,
    CellWrite,
    Mutation,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
)
from tests.convergence_model import expected_rows

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres")]

NOW = 1_000_000
COLUMNS = ("a", "b")


def value_bytes(column: str, value: object) -> bytes:
    if column == "a":
        return int(value).to_bytes(4, "big", signed=True)  # type: ignore[call-overload]
    return str(value).encode()


timestamps = st.integers(min_value=1, max_value=12)
expiry = st.one_of(st.none(), st.sampled_from([NOW - 10, NOW + 10]))
cell = st.builds(
    CellWrite,
    value=st.one_of(st.none(), st.integers(-3, 3)),
    expires_at=expiry,
)
text_cell = st.builds(
    CellWrite, value=st.one_of(st.none(), st.sampled_from(["x", "y", "zz"])), expires_at=expiry
)
keys = st.tuples(st.integers(0, 1), st.integers(0, 3))


@st.composite
def row_write(draw: Any) -> RowWrite:
    cells: dict[str, CellWrite] = {}
    if draw(st.booleans()):
        cells["a"] = draw(cell)
    if draw(st.booleans()):
        cells["b"] = draw(text_cell)
    insert = draw(st.booleans())
    return RowWrite(
        key=draw(keys),
        ts=draw(timestamps),
        cells=cells,
        marker=insert,
        marker_expires_at=draw(expiry) if insert else None,
    )


bound = st.builds(
    Bound,
    prefix=st.one_of(st.just(()), st.tuples(st.integers(0, 3))),
    kind=st.sampled_from(list(BoundKind)),
)
mutation = st.one_of(
    row_write(),
    row_write(),
    row_write(),
    st.builds(RowDelete, key=keys, ts=timestamps),
    st.builds(PartitionDelete, partition=st.tuples(st.integers(0, 1)), ts=timestamps),
    st.builds(RangeDelete, partition=st.tuples(st.integers(0, 1)), start=bound, end=bound, ts=timestamps),
)


def make_spec(descending: bool) -> MirrorSpec:
    return MirrorSpec(
        keyspace="prop",
        table="t",
        schema="prop_" + uuid.uuid4().hex[:8],
        name="t",
        partition_key=(ColumnSpec("p", "integer"),),
        clustering=(ColumnSpec("c", "integer"),),
        descending=(descending,),
        columns=(ColumnSpec("a", "integer"), ColumnSpec("b", "text")),
        order_bytes=value_bytes,
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    history=st.lists(mutation, min_size=1, max_size=25),
    seed=st.integers(0, 2**32),
    descending=st.booleans(),
)
def test_mirror_equals_model(pg_dsn: str, history: list[Mutation], seed: int, descending: bool) -> None:
    rng = random.Random(seed)
    delivered = [m for m in history for _ in range(rng.randint(1, 3))]
    rng.shuffle(delivered)
    spec = make_spec(descending)
    store = MirrorStore(spec)
    with psycopg.connect(pg_dsn) as conn:
        store.ensure(conn)
        conn.commit()
        try:
            start = 0
            while start < len(delivered):
                size = rng.randint(1, 8)
                with conn.transaction():
                    apply_mutations(conn, store, delivered[start : start + size], NOW)
                start += size
            got = {
                (p, c): {"a": a, "b": b}
                for p, c, a, b in conn.execute(
                    sql.SQL("SELECT p, c, a, b FROM {}").format(sql.Identifier(spec.schema, spec.name))
                )
            }
        finally:
            conn.rollback()
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(spec.schema)))
            conn.commit()
    want = expected_rows(history, 1, COLUMNS, (descending,), value_bytes, NOW)
    assert got == want

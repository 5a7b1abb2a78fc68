"""Property: random histories, duplicated, shuffled and split into random batches, applied through the
production apply path (:func:`app.sink.applier.apply_table`, the function the worker's batches run) into real
PostgreSQL, leave the mirror equal to the reference model."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from app.sink.applier import apply_table
from app.sink.registry import TableEntry
from app.sink.store import MirrorStore
from app.testing import cql_table
from models.convergence import ReadBack
from models.mirror_spec import MirrorSpec, spec_for
from models.mutations import (
    Bound,
    BoundKind,
    CellWrite,
    Key,
    Mutation,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
)
from models.table_schema import TableSchema
from models.transforms import NO_TRANSFORMS, compile_plan, mask_email, parse_rules
from tests.convergence_model import expected_rows

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres")]

NOW = 1_000_000
COLUMNS = ("a", "b")


def value_bytes(column: str, value: object) -> bytes:
    if column == "a":
        assert isinstance(value, int)
        return value.to_bytes(4, "big", signed=True)
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
    """The production description of ``prop.t``: every value goes through the real type mapping."""
    schema = cql_table(
        "prop", "t", {"p": "int"}, {"c": "int"}, {"a": "int", "b": "text"}, descending=(descending,)
    )
    return spec_for(schema, f"prop_{uuid.uuid4().hex[:8]}.t")


class NoCollections:
    """The table has no non-frozen collection, so the apply path must never read back."""

    def read(
        self, schema: TableSchema, keys: Sequence[Key], columns: Sequence[str] | None = None
    ) -> dict[Key, dict[str, ReadBack]]:
        raise AssertionError(f"unexpected read-back of {keys}")


tied_cell = st.builds(
    CellWrite,
    value=st.one_of(st.none(), st.integers(-3, 3), st.integers(-3, 3)),
    expires_at=st.sampled_from([None, NOW - 10, NOW + 10]),
)


@st.composite
def tied_write(draw: Any) -> RowWrite:
    """A write of one row at one of two timestamps, mostly with values: equal timestamps are common, so the
    tie rules decide (tombstone vs expiring vs live, expiry vs expiry, value vs value)."""
    insert = draw(st.booleans())
    return RowWrite(
        key=(0, 0),
        ts=draw(st.integers(1, 2)),
        cells={"a": draw(tied_cell)} if draw(st.integers(0, 3)) else {},
        marker=insert,
        marker_expires_at=draw(expiry) if insert else None,
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    history=st.lists(mutation, min_size=1, max_size=25),
    seed=st.integers(0, 2**32),
    descending=st.booleans(),
)
def test_mirror_equals_model(pg_dsn: str, history: list[Mutation], seed: int, descending: bool) -> None:
    check_against_model(pg_dsn, history, seed, descending)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=st.lists(tied_write(), min_size=2, max_size=6), seed=st.integers(0, 2**32))
def test_equal_timestamp_ties_follow_cassandra(pg_dsn: str, history: list[Mutation], seed: int) -> None:
    """Cells.reconcile's tie rules (tombstone > expiring > live, later expiry, greater bytes) via PostgreSQL."""
    check_against_model(pg_dsn, history, seed, descending=False)


def check_against_model(pg_dsn: str, history: list[Mutation], seed: int, descending: bool) -> None:
    """Apply ``history`` duplicated, shuffled and in random batches; the mirror must equal the model."""
    rows = applied(pg_dsn, make_spec(descending), history, random.Random(seed), 8, NoCollections())
    got = {(p, c): {"a": a, "b": b} for p, c, a, b in rows}
    want = expected_rows(history, 1, COLUMNS, (descending,), value_bytes, NOW)
    assert got == want


def applied(
    pg_dsn: str,
    spec: MirrorSpec,
    history: Sequence[Mutation],
    rng: random.Random,
    max_batch: int,
    reader: Any,
) -> list[tuple[Any, ...]]:
    """``history`` duplicated, shuffled and applied in random batches of up to ``max_batch`` through the
    production path (each mutation transformed by the spec's plan first, as decoding does) into a fresh
    mirror; its rows ``(p, c, a, b)``. The mirror is dropped afterwards."""
    delivered = [m for m in history for _ in range(rng.randint(1, 3))]
    rng.shuffle(delivered)
    plan = spec.transforms or NO_TRANSFORMS
    store = MirrorStore(spec)
    entry = TableEntry(spec.source, store, plan)
    with psycopg.connect(pg_dsn) as conn:
        store.ensure(conn)
        conn.commit()
        try:
            start = 0
            while start < len(delivered):
                size = rng.randint(1, max_batch)
                batch = [plan.mutation(m) for m in delivered[start : start + size]]
                with conn.transaction():
                    apply_table(conn, entry, batch, NOW, reader)
                start += size
            query = sql.SQL("SELECT p, c, a, b FROM {}").format(sql.Identifier(spec.schema, spec.name))
            return [tuple(row) for row in conn.execute(query)]
        finally:
            conn.rollback()
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(spec.schema)))
            conn.commit()


# -- a masked column: ties are settled by reading Cassandra's value back -------------------------------------
EMAILS = ["amy@b.example", "zed@a.example", "bob@c.example", "amy@c.example"]
"""Different originals with different masked values (``***@<domain>``), and two sharing one (``c``)."""
MASKED = parse_rules({"prop.t": {"b": {"mask": "email"}}})


@st.composite
def tied_email_write(draw: Any) -> RowWrite:
    """A write of ``b`` (an email, or its deletion) to one of two rows at one of two timestamps."""
    return RowWrite(
        key=(0, draw(st.integers(0, 1))),
        ts=draw(st.integers(1, 2)),
        cells={"b": CellWrite(draw(st.one_of(st.sampled_from(EMAILS), st.sampled_from(EMAILS), st.none())))},
        marker=draw(st.booleans()),
    )


class ModelCassandra:
    """The read-back as Cassandra would answer it, from the reference model over the *original* history:
    the visible value of the cell and the write time of the version that won."""

    def __init__(self, history: Sequence[Mutation]) -> None:
        self.history = history
        self.rows = expected_rows(history, 1, COLUMNS, (False,), value_bytes, NOW)
        self.reads = 0

    def read(
        self, schema: TableSchema, keys: Sequence[Key], columns: Sequence[str] | None = None
    ) -> dict[Key, dict[str, ReadBack]]:
        assert columns is not None, "no collection in this table"
        self.reads += 1
        return {key: {c: self._cell(key, c) for c in columns} for key in keys}

    def _cell(self, key: Key, column: str) -> ReadBack:
        value = self.rows.get(key, {}).get(column)
        if value is None:
            return ReadBack(None, None)
        times = [m.ts for m in self.history if isinstance(m, RowWrite) and m.key == key and column in m.cells]
        return ReadBack(value, max(times))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=st.lists(tied_email_write(), min_size=2, max_size=8), seed=st.integers(0, 2**32))
def test_ties_on_a_masked_column_follow_cassandras_choice(
    pg_dsn: str, history: list[Mutation], seed: int
) -> None:
    """Equal-timestamp writes of different emails to a masked column, shuffled, duplicated and batched: the
    mirror holds the mask of the value Cassandra keeps (the greater original), never an original."""
    schema = make_spec(False).source
    plan = compile_plan(schema, MASKED)
    spec = spec_for(schema, f"prop_{uuid.uuid4().hex[:8]}.t", plan)
    cassandra = ModelCassandra(history)
    got = {(p, c): b for p, c, _, b in applied(pg_dsn, spec, history, random.Random(seed), 4, cassandra)}
    want = {
        key: None if row["b"] is None else mask_email(str(row["b"])) for key, row in cassandra.rows.items()
    }
    assert got == want

"""Repairing mismatches through the stream's apply path (``Applier.repair``): each row is read again from
Cassandra with every cell's write time and TTL and applied as mutations, so the merge never overwrites newer
data; a row that Cassandra no longer has is removed only by a row tombstone at the time it was observed
missing; a cell null in Cassandra gets a cell tombstone at that time; non-frozen collections are read back as
the stream does.

A mirror cell that contradicts Cassandra at the *same* write time (a change made in PostgreSQL by hand keeps
the cell's time) would win or lose by Cassandra's tie rule; the repair drops such loaded cells first, so
Cassandra's value is the one written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cassandra.metadata import protect_name

from app.cql import key_condition, table_name
from app.reconcile.engine import Found
from app.sink.applier import Applier, LoadedAdjuster
from models.backfill import RowLayout
from models.convergence import RowState
from models.cql_types import from_driver, is_multicell
from models.mutations import CellWrite, Key, Mutation, RowDelete, RowWrite
from models.reconcile import MismatchType
from models.table_schema import Column, TableSchema


def _simple(schema: TableSchema) -> list[Column]:
    return [c for c in schema.columns if not is_multicell(c.type)]


def _multi(schema: TableSchema) -> list[Column]:
    return [c for c in schema.columns if is_multicell(c.type)]


def row_query(schema: TableSchema) -> str:
    """One row by its primary key: each simple column with its write time and TTL, each non-frozen collection
    with its newest write time."""
    parts = RowLayout.of(schema).selection()
    key = key_condition(c.name for c in (*schema.partition_key, *schema.clustering))
    if not parts:  # a table of key columns only
        parts = [protect_name(schema.partition_key[0].name)]
    return f"SELECT {', '.join(parts)} FROM {table_name(schema.keyspace, schema.table)} WHERE {key}"  # noqa: S608


def mutation_key(schema: TableSchema, raw: Sequence[Any]) -> Key:
    """A driver-returned primary key as the sink's key (its PostgreSQL values)."""
    columns = (*schema.partition_key, *schema.clustering)
    return tuple(from_driver(c.type, v) for c, v in zip(columns, raw, strict=True))


def mutations_of(
    schema: TableSchema, key: Key, record: Sequence[Any], observed_us: int, now_us: int
) -> list[Mutation]:
    """The mutations that bring the mirror's row to Cassandra's ``record`` (:func:`row_query`'s columns)."""
    simple, multi = _simple(schema), _multi(schema)
    n = len(simple)
    values, times, ttls = record[:n], record[n : 2 * n], record[2 * n : 3 * n]
    by_ts: dict[int, dict[str, CellWrite]] = {}
    nulls: dict[str, CellWrite] = {}
    for column, value, ts, ttl in zip(simple, values, times, ttls, strict=True):
        if value is None or ts is None:
            nulls[column.name] = CellWrite(None)
            continue
        expires = now_us + int(ttl) * 1_000_000 if ttl else None
        by_ts.setdefault(int(ts), {})[column.name] = CellWrite(from_driver(column.type, value), expires)
    found: list[Mutation] = [RowWrite(key, ts, cells) for ts, cells in sorted(by_ts.items())]
    if nulls:
        found.append(RowWrite(key, observed_us, nulls))
    collections = record[3 * n : 3 * n + len(multi)]
    newest = [int(t) for t in record[3 * n + len(multi) :] if t is not None]
    if multi:
        cells = {
            c.name: CellWrite(from_driver(c.type, v) if v is not None else None)
            for c, v in zip(multi, collections, strict=True)
        }
        hints = frozenset(c.name for c in multi)
        found.append(RowWrite(key, max(newest, default=observed_us), cells, hint_columns=hints))
    if not by_ts and not newest:
        found.append(RowWrite(key, observed_us, {}, marker=True))  # a row of its key alone: its marker
    return found


def adjuster(mutations: Sequence[Mutation]) -> LoadedAdjuster:
    """Drop loaded cells that differ from Cassandra's at the same write time (see the module's note)."""
    written = {
        (m.key, name): (m.ts, cell.value)
        for m in mutations
        if isinstance(m, RowWrite) and not m.hint_columns
        for name, cell in m.cells.items()
    }

    def adjust(rows: dict[Key, RowState], tombstones: object) -> dict[Key, RowState]:
        out = {}
        for key, state in rows.items():
            kept = {
                name: cell
                for name, cell in state.cells.items()
                if not (
                    (key, name) in written
                    and written[(key, name)][0] == cell.ts
                    and written[(key, name)][1] != cell.value
                )
            }
            out[key] = state if len(kept) == len(state.cells) else replace(state, cells=kept)
        return out

    return adjust


def repair_table(
    conn: Any,
    applier: Applier,
    session: Any,
    schema: TableSchema,
    found: Sequence[Found],
    observed_us: int,
    now_us: int,
) -> int:
    """Repair ``found`` rows of one table inside the caller's transaction; rows changed."""
    statement = session.prepare(row_query(schema))
    mutations: list[Mutation] = []
    for f in found:
        if f.candidate.kind is MismatchType.MISSING_IN_CASSANDRA:
            mutations.append(RowDelete(tuple(f.postgres_key), observed_us))
            continue
        record = session.execute(statement, tuple(f.cassandra_key)).one()
        key = mutation_key(schema, f.cassandra_key)
        if record is None:  # deleted in Cassandra since the check
            mutations.append(RowDelete(key, observed_us))
            continue
        mutations.extend(mutations_of(schema, key, tuple(record), observed_us, now_us))
    if not mutations:
        return 0
    path = (schema.keyspace, schema.table)
    mutations = applier.transformed(path, mutations)  # Cassandra's values, as the mirror holds them
    return applier.repair(conn, path, mutations, adjuster(mutations))

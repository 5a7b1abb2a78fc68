"""Backfill: rows that exist in Cassandra, read with every cell's write time and TTL, as the sink's own
mutations (pure).

What CQL exposes and what it does not (Cassandra 5.0):

- a simple cell: its value, ``WRITETIME`` (µs) and ``TTL`` (seconds left): exact, so each cell merges with the
  stream by Cassandra's own rule;
- a non-frozen collection: ``WRITETIME`` is a list (one write time per element), ``MAXWRITETIME`` the newest,
  and ``TTL`` a list with a null per element without one (which the Python driver cannot decode). The mirror
  keeps a collection as one cell (its value at its newest element's write time, read back from Cassandra,
  as the stream does), so the backfill reads the value and ``MAXWRITETIME``;
- the row marker (an INSERT's liveness): neither its existence nor its write time nor its TTL can be selected.
  A row that only its marker keeps alive reads as its key with every column null.

The marker therefore is an approximation, chosen so that it changes nothing a later or concurrent event
decides (README, Backfill):

- a row alive only by its marker gets a marker at the time its page was requested (``read_us``): the insert
  happened before the read, and a delete that the read did not see happened after it, so with write times
  from the clock that delete carries a later time and removes the row, and one the read did see had
  already lost to the marker;
- a row with live cells gets a marker at its oldest live cell's write time (an INSERT writes its marker and
  cells at one time; later writes only raise cell times), expiring when its cells do if every one of them
  expires. A tombstone at or after that time removes it as it removes those cells; the mirror and
  Cassandra differ only if every cell of a row that had no INSERT is later deleted one cell at a time (the
  mirror keeps the row with nulls), or for a backdated write in the window described above.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cassandra.metadata import protect_name

from models.convergence import ReadBack
from models.cql_types import driver_converter, is_multicell
from models.mutations import CellWrite, Key, Mutation, RowWrite
from models.table_schema import Column, TableSchema

Convert = Callable[[object], object]


@dataclass(frozen=True)
class RowLayout:
    """Where each part of a scanned row is: key columns, simple values, their write times and TTLs,
    collections and their newest write times, the partition's token (last)."""

    keys: tuple[Column, ...]
    simple: tuple[Column, ...]
    multi: tuple[Column, ...]
    convert_keys: tuple[Convert, ...] = ()
    convert_simple: tuple[Convert, ...] = ()
    convert_multi: tuple[Convert, ...] = ()
    """Driver value -> the sink's value, per column (:func:`driver_converter`, resolved once)."""
    simple_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, schema: TableSchema) -> RowLayout:
        keys = (*schema.partition_key, *schema.clustering)
        simple = tuple(c for c in schema.columns if not is_multicell(c.type))
        multi = tuple(c for c in schema.columns if is_multicell(c.type))

        def converters(columns: tuple[Column, ...]) -> tuple[Convert, ...]:
            return tuple(driver_converter(c.type) for c in columns)

        return cls(
            keys,
            simple,
            multi,
            converters(keys),
            converters(simple),
            converters(multi),
            tuple(c.name for c in simple),
        )

    def selection(self) -> list[str]:
        """The selected expressions after the key columns (every name protected)."""
        simple = [protect_name(c.name) for c in self.simple]
        multi = [protect_name(c.name) for c in self.multi]
        return [
            *simple,
            *(f"WRITETIME({n})" for n in simple),
            *(f"TTL({n})" for n in simple),
            *multi,
            *(f"MAXWRITETIME({n})" for n in multi),
        ]


def scan_query(schema: TableSchema, keyspace_table: str) -> str:
    """One token range ``(?, ?]`` of a table: each row's key, cells with their write times and TTLs, token.
    ``keyspace_table``: the protected ``"ks"."t"``."""
    layout = RowLayout.of(schema)
    pk = ", ".join(protect_name(c.name) for c in schema.partition_key)
    selected = [*(protect_name(c.name) for c in layout.keys), *layout.selection(), f"token({pk})"]
    return (
        f"SELECT {', '.join(selected)} FROM {keyspace_table} "  # noqa: S608 (every name protected)
        f"WHERE token({pk}) > ? AND token({pk}) <= ?"
    )


class ScannedRow(NamedTuple):
    """One backfilled row: its key (the sink's values), the partition's token, the mutations that carry its
    cells, and its non-frozen collections as Cassandra holds them (for the read-back, see
    :mod:`app.backfill.apply`)."""

    key: Key
    token: int
    mutations: list[Mutation]
    collections: dict[str, ReadBack]


def scanned_row(layout: RowLayout, record: Sequence[Any], read_us: int, now_us: int) -> ScannedRow:
    """A scanned row (:func:`scan_query`'s columns) as mutations; ``read_us``: when its page was requested,
    ``now_us``: the clock TTLs count from. (The per-row hot path of a backfill: no ``strict`` zips, the
    layout's names and converters precomputed.)"""
    k, n, m = len(layout.keys), len(layout.simple), len(layout.multi)
    key = tuple([f(v) for f, v in zip(layout.convert_keys, record[:k], strict=False)])
    by_ts: dict[int, dict[str, CellWrite]] = {}
    expiries: list[int | None] = []
    for i, (name, convert) in enumerate(zip(layout.simple_names, layout.convert_simple, strict=False)):
        value, ts = record[k + i], record[k + n + i]
        if value is None or ts is None:
            continue  # no live cell: the backfill adds only what Cassandra holds
        ttl = record[k + 2 * n + i]
        expires = now_us + ttl * 1_000_000 if ttl else None
        expiries.append(expires)
        cells = by_ts.get(ts)
        if cells is None:
            cells = by_ts[ts] = {}
        cells[name] = CellWrite(convert(value), expires)
    collections: dict[str, ReadBack] = {}
    if m:
        at = k + 3 * n
        for c, convert, v, ts in zip(
            layout.multi, layout.convert_multi, record[at : at + m], record[at + m :], strict=False
        ):
            if v is not None and ts is not None:
                collections[c.name] = ReadBack(convert(v), ts)
    return ScannedRow(key, record[-1], _mutations(key, by_ts, collections, expiries, read_us), collections)


def _mutations(
    key: Key,
    by_ts: dict[int, dict[str, CellWrite]],
    collections: dict[str, ReadBack],
    expiries: list[int | None],
    read_us: int,
) -> list[Mutation]:
    """One write per write time of simple cells, one per collection (a read-back hint of its own, so no
    simple cell's TTL is taken for its elements'), and the marker on the oldest (see the module's note)."""
    marker_expires = (
        max(e for e in expiries if e is not None)
        if expiries and not collections and all(e is not None for e in expiries)
        else None
    )
    if len(by_ts) == 1 and not collections:  # the common row: every cell written at one time
        ((ts, cells),) = by_ts.items()
        return [RowWrite(key, ts, cells, True, marker_expires)]
    times = [*by_ts, *(r.newest_ts for r in collections.values() if r.newest_ts is not None)]
    if not times:
        return [RowWrite(key, read_us, {}, marker=True)]  # alive by its marker alone
    oldest = min(times)
    found: list[Mutation] = [
        RowWrite(key, ts, cells, ts == oldest, marker_expires if ts == oldest else None)
        for ts, cells in sorted(by_ts.items())
    ]
    if oldest not in by_ts:
        found.append(RowWrite(key, oldest, {}, marker=True))
    found.extend(
        RowWrite(key, int(r.newest_ts or oldest), {c: CellWrite(r.value)}, hint_columns=frozenset((c,)))
        for c, r in collections.items()
    )
    return found

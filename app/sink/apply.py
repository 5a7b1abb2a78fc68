"""The apply path for one table's share of a batch: load state, plan the merge, write it back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection

from app.sink.store import MirrorStore
from models.merge_plan import needs, plan
from models.mutations import Mutation


def apply_mutations(
    conn: Connection[Any], store: MirrorStore, mutations: Sequence[Mutation], now_us: int
) -> int:
    """Apply ``mutations`` inside the caller's transaction; returns how many rows changed."""
    if not mutations:
        return 0
    shape = store.spec.shape()
    rows, tombstones = store.load(conn, needs(shape, mutations))
    result = plan(shape, mutations, rows, tombstones)
    store.write(conn, result, now_us)
    return len(result.rows)

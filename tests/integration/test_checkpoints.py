"""Offsets in PostgreSQL with fencing: a worker whose partition was claimed by another cannot commit."""

from __future__ import annotations

import psycopg
import pytest

from app.sink.checkpoints import Fenced, advance, claim, ensure_meta
from app.testing import unique

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres")]


def test_stale_generation_is_fenced_and_rolls_back(pg_dsn: str) -> None:
    group, tp = unique("it_fence"), ("cdc.ks.t", 0)
    with psycopg.connect(pg_dsn) as conn:
        ensure_meta(conn)
        conn.commit()
        first = claim(conn, group, [tp])[tp]
        conn.commit()
        assert first.next_offset is None
        advance(conn, group, {tp: 10}, {tp: first.generation}, {tp: 10})
        conn.commit()
        second = claim(conn, group, [tp])[tp]  # another worker takes the partition over
        conn.commit()
        assert second.next_offset == 10
        assert second.generation > first.generation
        with pytest.raises(Fenced):
            advance(conn, group, {tp: 20}, {tp: first.generation}, {tp: 10})
        conn.rollback()
        advance(conn, group, {tp: 15}, {tp: second.generation}, {tp: 5})
        conn.commit()
        row = conn.execute(
            "SELECT next_offset, events FROM _cdc_checkpoints WHERE group_id = %s AND topic = %s",
            (group, tp[0]),
        ).fetchone()
        conn.execute("DELETE FROM _cdc_checkpoints WHERE group_id = %s", (group,))
        conn.commit()
    assert row == (15, 15)

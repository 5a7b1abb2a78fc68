"""The demo write planner: deterministic, every kind of write, updates and deletes aimed at known rows."""

from __future__ import annotations

from collections import Counter
from itertools import islice

from app.demo.generator import MIX, STATEMENTS, Planner


def test_same_seed_same_writes() -> None:
    first = [w.statement for w in islice(Planner(seed=7).writes(), 300)]
    second = [w.statement for w in islice(Planner(seed=7).writes(), 300)]
    assert first == second
    assert first != [w.statement for w in islice(Planner(seed=8).writes(), 300)]


def test_mix_covers_every_statement_with_matching_parameter_counts() -> None:
    writes = list(islice(Planner(seed=1).writes(), 5000))
    kinds = Counter(w.statement for w in writes)
    assert set(kinds) == set(MIX) == set(STATEMENTS)
    for write in writes:
        assert len(write.params) == STATEMENTS[write.statement].count("?"), write.statement


def test_updates_and_deletes_target_rows_written_before() -> None:
    planner = Planner(seed=3)
    inserted: set[tuple[object, object]] = set()
    for write in islice(planner.writes(), 3000):
        if write.statement == "customer_insert":
            inserted.add(write.params[:2])
        elif write.statement in ("customer_update", "customer_cell_delete", "customer_delete"):
            assert write.params[-2:] in inserted

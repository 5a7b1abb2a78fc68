"""Random CQL workloads shared by the real-stack tests."""

from __future__ import annotations

import random

RANDOM_DEFINITION = "p int, c int, v int, w text, tags set<int>, PRIMARY KEY (p, c)"
"""The table :func:`random_statements` writes to."""


def random_statements(rng: random.Random, table: str, n: int, base_ts: int) -> list[str]:
    """``n`` CQL statements on ``table`` (``keyspace.name``, of :data:`RANDOM_DEFINITION`): writes with
    explicit, overlapping timestamps; cell, row and range deletes; set additions."""
    out = []
    for _ in range(n):
        p, c, ts, v = rng.randint(0, 4), rng.randint(0, 9), base_ts + rng.randint(0, 500), rng.randint(0, 9)
        where = f"WHERE p = {p} AND c = {c}"
        out.append(
            rng.choice(
                [
                    f"INSERT INTO {table} (p, c, v, w) VALUES ({p}, {c}, {v}, 'w{v}') USING TIMESTAMP {ts}",
                    f"INSERT INTO {table} (p, c, v, w) VALUES ({p}, {c}, {v}, 'w{v}') USING TIMESTAMP {ts}",
                    f"UPDATE {table} USING TIMESTAMP {ts} SET v = {v} {where}",
                    f"DELETE w FROM {table} USING TIMESTAMP {ts} {where}",
                    f"DELETE FROM {table} USING TIMESTAMP {ts} {where}",
                    f"DELETE FROM {table} USING TIMESTAMP {ts} WHERE p = {p} AND c >= {c} AND c < {c + 2}",
                    f"UPDATE {table} USING TIMESTAMP {ts} SET tags = tags + {{{v}}} {where}",
                ]
            )
        )
    return out

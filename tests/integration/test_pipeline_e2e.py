"""End to end on the real stack: CQL writes -> Debezium agent -> Kafka -> `cdc worker` -> PostgreSQL.

Each test owns a keyspace and a worker process replicating only it; Cassandra and PostgreSQL are compared
row by row once the worker's checkpoints reach the end of the topics.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from cassandra.util import Duration

from app.testing import (
    StartWorker,
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    now_us,
    wait_applied,
)

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

ALL_TYPES = """
    id int, part text, seq int,
    t text, a ascii, vc varchar, ti tinyint, si smallint, i int, bi bigint, vi varint, de decimal,
    f float, d double, b boolean, bl blob, da date, tm time, ts timestamp, du duration,
    u uuid, tu timeuuid, ip inet,
    l list<int>, s set<text>, m map<text, int>,
    fl frozen<list<text>>, fs frozen<set<int>>, fm frozen<map<int, text>>,
    tup tuple<int, text, double>, nested frozen<list<frozen<list<int>>>>,
    PRIMARY KEY ((id, part), seq)
"""


def assert_converged(cql: Any, pg_dsn: str, keyspace: str, tables: list[str], worker: WorkerProcess) -> None:
    diffs = compare_keyspace(cql, pg_dsn, keyspace, tables)
    report = "\n".join(d.summary() for d in diffs)
    for d in diffs:
        for key, cols in list(d.different.items())[:5]:
            report += f"\n  {d.table} {key}: {cols}"
        report += "".join(f"\n  missing {k}" for k in d.missing[:5])
        report += "".join(f"\n  extra {k}" for k in d.extra[:5])
    assert all(d.equal for d in diffs), report + "\n--- worker log ---\n" + worker.log_tail()


def test_every_type_round_trips(
    cql: Any, keyspace: str, start_worker: StartWorker, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    create_cdc_keyspace(cql, keyspace, {"all_types": ALL_TYPES}, topic_prefix, kafka_bootstrap)
    insert = cql.prepare(
        f"""INSERT INTO {keyspace}.all_types (id, part, seq, t, a, vc, ti, si, i, bi, vi, de, f, d, b, bl, da, tm, ts,
            du, u, tu, ip, l, s, m, fl, fs, fm, tup, nested)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
    )
    rows = [
        (
            1,
            "edge",
            1,
            "ünïcode ✓",
            "ascii",
            "varchar",
            -128,
            -32768,
            -(2**31),
            -(2**63),
            -(10**40) - 7,
            Decimal("-12345678901234567890.123456789012345678"),
            3.4028234663852886e38,
            -1.7976931348623157e308,
            True,
            b"\x00\xff\x10",
            dt.date(1, 1, 1),
            dt.time(23, 59, 59, 999999),
            dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
            Duration(0, 3, 1_500_000_000),
            uuid.UUID("00000000-0000-4000-8000-000000000000"),
            uuid.uuid1(),
            "2001:db8::1",
            [3, 1, 2],
            {"b", "a"},
            {"k": 1, "z": -1},
            ["x", "y"],
            {3, 1},
            {2: "two", 1: "one"},
            (7, "seven", 7.5),
            [[1, 2], [3]],
        ),
        (
            2,
            "edge",
            2,
            "",
            "",
            "",
            127,
            32767,
            2**31 - 1,
            2**63 - 1,
            10**40,
            Decimal("0.000001"),
            -0.0,
            0.1,
            False,
            b"",
            dt.date(9999, 12, 31),
            dt.time(0, 0),
            dt.datetime(2262, 4, 11, 23, 47, 16, 854000),
            Duration(0, 0, 0),
            uuid.uuid4(),
            uuid.uuid1(),
            "10.0.0.1",
            None,
            None,
            None,
            [],
            set(),
            {},
            (None, None, None),
            [],
        ),
    ]
    for row in rows:
        cql.execute(insert, row)
    worker = start_worker([keyspace])
    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [f"{topic_prefix}.{keyspace}.all_types"])
    assert_converged(cql, pg_dsn, keyspace, ["all_types"], worker)
    with psycopg.connect(pg_dsn) as conn:
        vi, de, du, ts = conn.execute(
            f'SELECT vi::text, de::text, du::text, ts FROM "{keyspace}".all_types WHERE id = 1 AND part = %s',
            ("edge",),
        ).fetchone() or (None, None, None, None)
        types: dict[str, str] = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'all_types'",
                (keyspace,),
            ).fetchall()
        )
    assert vi == str(-(10**40) - 7)
    assert de == "-12345678901234567890.123456789012345678"
    assert du == "3 days 00:00:01.5"
    assert ts == dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)
    expected_types = {
        "vi": "numeric",
        "de": "numeric",
        "ts": "timestamp with time zone",
        "l": "ARRAY",
        "m": "jsonb",
        "tup": "jsonb",
        "ip": "inet",
        "du": "interval",
        "tm": "time without time zone",
        "bl": "bytea",
        "f": "real",
        "d": "double precision",
        "ti": "smallint",
        "u": "uuid",
        "da": "date",
        "b": "boolean",
    }
    assert {k: types[k] for k in expected_types} == expected_types
    cassandra_tokens = {
        (r[0], r[1]): r[2] for r in cql.execute(f"SELECT id, part, token(id, part) FROM {keyspace}.all_types")
    }
    with psycopg.connect(pg_dsn) as conn:
        mirror_tokens = {
            (r[0], r[1]): r[2]
            for r in conn.execute(f'SELECT id, part, _cdc_token FROM "{keyspace}".all_types')
        }
    assert mirror_tokens == cassandra_tokens


WORKLOAD = "p int, c int, v int, w text, tags set<int>, PRIMARY KEY (p, c)"


def random_statements(rng: random.Random, keyspace: str, n: int, base_ts: int) -> list[str]:
    """Writes with explicit timestamps in random order, deletes of every kind, TTLs, collection changes."""
    out = []
    for _ in range(n):
        p, c = rng.randint(0, 4), rng.randint(0, 9)
        ts = base_ts + rng.randint(0, 500)  # heavy overlap: timestamps out of write order, ties included
        kind = rng.choices(
            ["insert", "update", "cell", "row", "partition", "range", "ttl", "append", "remove"],
            [25, 20, 8, 8, 3, 6, 8, 12, 6],
        )[0]
        t = f"{keyspace}.t"
        if kind == "insert":
            out.append(
                f"INSERT INTO {t} (p, c, v, w) VALUES ({p}, {c}, {rng.randint(0, 9)}, 'w{rng.randint(0, 9)}') USING TIMESTAMP {ts}"
            )
        elif kind == "update":
            out.append(
                f"UPDATE {t} USING TIMESTAMP {ts} SET v = {rng.randint(0, 9)} WHERE p = {p} AND c = {c}"
            )
        elif kind == "cell":
            out.append(f"DELETE w FROM {t} USING TIMESTAMP {ts} WHERE p = {p} AND c = {c}")
        elif kind == "row":
            out.append(f"DELETE FROM {t} USING TIMESTAMP {ts} WHERE p = {p} AND c = {c}")
        elif kind == "partition":
            out.append(f"DELETE FROM {t} USING TIMESTAMP {ts} WHERE p = {p}")
        elif kind == "range":
            lo = rng.randint(0, 8)
            out.append(
                f"DELETE FROM {t} USING TIMESTAMP {ts} WHERE p = {p} AND c >= {lo} AND c < {lo + rng.randint(1, 4)}"
            )
        elif kind == "ttl":
            ttl = rng.choice([2, 3600])
            out.append(
                f"INSERT INTO {t} (p, c, v) VALUES ({p}, {c}, {rng.randint(0, 9)}) USING TIMESTAMP {ts} AND TTL {ttl}"
            )
        elif kind == "append":
            out.append(
                f"UPDATE {t} USING TIMESTAMP {ts} SET tags = tags + {{{rng.randint(0, 5)}}} WHERE p = {p} AND c = {c}"
            )
        else:
            out.append(
                f"UPDATE {t} USING TIMESTAMP {ts} SET tags = tags - {{{rng.randint(0, 5)}}} WHERE p = {p} AND c = {c}"
            )
    return out


def test_random_out_of_order_workload_converges(
    cql: Any, keyspace: str, start_worker: StartWorker, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    create_cdc_keyspace(cql, keyspace, {"t": WORKLOAD}, topic_prefix, kafka_bootstrap)
    rng = random.Random(20261126)
    worker = start_worker([keyspace])
    base = now_us()
    for statement in random_statements(rng, keyspace, 600, base):
        cql.execute(statement)
    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [f"{topic_prefix}.{keyspace}.t"])
    time.sleep(4)  # two-second TTLs have passed; the worker's sweep runs every second in tests
    assert_converged(cql, pg_dsn, keyspace, ["t"], worker)

"""End to end on the real stack: CQL writes -> Debezium agent -> Kafka -> `cdc worker` -> PostgreSQL.

Each test owns a keyspace and a worker process replicating only it; Cassandra and PostgreSQL are compared
row by row once the worker's checkpoints reach the end of the topics.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import random
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from cassandra.util import Duration, Time
from psycopg import sql

from app.clock import now_us
from app.compare import TableDiff
from app.testing import (
    StartWorker,
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    drop_pg_schema,
    unique,
    wait_applied,
    wait_until,
)
from models.transforms import Rules

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


def report(diffs: list[TableDiff]) -> str:
    """The diffs' summaries and the first differences of each table."""
    text = "\n".join(d.summary() for d in diffs)
    for d in diffs:
        for key, cols in list(d.different.items())[:5]:
            text += f"\n  {d.table} {key}: {cols}"
        text += "".join(f"\n  missing {k}" for k in d.missing[:5])
        text += "".join(f"\n  extra {k}" for k in d.extra[:5])
    return text


def wait_converged(
    cql: Any,
    pg_dsn: str,
    keyspace: str,
    tables: list[str],
    worker: WorkerProcess,
    timeout: float,
    targets: dict[str, str] | None = None,
    transforms: tuple[Rules, bytes] | None = None,
) -> None:
    """Compare until Cassandra (with ``transforms``: its rows transformed) and the mirror are equal; after
    ``timeout`` s fail with the last differences."""
    last: list[TableDiff] = []
    absent: list[str] = []

    def equal() -> bool:
        try:
            last[:] = compare_keyspace(cql, pg_dsn, keyspace, tables, targets, transforms)
        except psycopg.errors.UndefinedTable as error:  # the mirror is not there (yet)
            absent[:] = [str(error).splitlines()[0]]
            return False
        absent.clear()
        return all(d.equal for d in last)

    def failure() -> str:
        state = absent[0] if absent else report(last)
        return f"Cassandra and PostgreSQL still differ:\n{state}\n--- worker log ---\n{worker.log_tail()}"

    wait_until(equal, timeout, failure, 1.0)


def assert_converged(cql: Any, pg_dsn: str, keyspace: str, tables: list[str], worker: WorkerProcess) -> None:
    diffs = compare_keyspace(cql, pg_dsn, keyspace, tables)
    assert all(d.equal for d in diffs), report(diffs) + "\n--- worker log ---\n" + worker.log_tail()


COLUMNS = (
    *(
        "id",
        "part",
        "seq",
        "t",
        "a",
        "vc",
        "ti",
        "si",
        "i",
        "bi",
        "vi",
        "de",
        "f",
        "d",
        "b",
        "bl",
        "da",
        "tm",
        "ts",
    ),
    *("du", "u", "tu", "ip", "l", "s", "m", "fl", "fs", "fm", "tup", "nested"),
)
TU = uuid.UUID("a4a70900-24e1-11df-8924-001ff3591711")
"""A version-1 uuid (timeuuid), fixed so that the mirror's value can be written out."""
U4 = uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")
UTC_PLUS_2 = dt.timezone(dt.timedelta(hours=2))

ROWS: list[tuple[object, ...]] = [
    (
        *(1, "edge", 1, "ünïcode ✓", "ascii", "varchar", -128, -32768, -(2**31), -(2**63), -(10**40) - 7),
        Decimal("-12345678901234567890.123456789012345678"),
        *(3.4028234663852886e38, -1.7976931348623157e308, True, b"\x00\xff\x10"),
        *(dt.date(1, 1, 1), dt.time(23, 59, 59, 999999), dt.datetime(1969, 12, 31, 23, 59, 59, 999000)),
        *(
            Duration(0, 3, 1_500_000_000),
            uuid.UUID("00000000-0000-4000-8000-000000000000"),
            TU,
            "2001:db8::1",
        ),
        *([3, 1, 2], {"b", "a"}, {"k": 1, "z": -1}, ["x", "y"], {3, 1}, {2: "two", 1: "one"}),
        *((7, "seven", 7.5), [[1, 2], [3]]),
    ),
    (
        *(2, "edge", 2, "", "", "", 127, 32767, 2**31 - 1, 2**63 - 1, 10**40, Decimal("0.000001")),
        *(-0.0, 0.1, False, b"", dt.date(9999, 12, 31), dt.time(0, 0)),
        *(dt.datetime(2262, 4, 11, 23, 47, 16, 854000), Duration(0, 0, 0), U4, TU, "10.0.0.1"),
        *(None, None, None, [], set(), {}, (None, None, None), []),
    ),
    (
        *(3, "special", 3, "a'b\"c\\", "~", "x", 0, 0, 0, 2**53 + 1, 0, Decimal("1.10")),
        *(math.nan, math.inf, True, b"\x01", dt.date(1970, 1, 1), Time(1_999)),
        *(
            dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC_PLUS_2),
            Duration(-1, -2, -1_500),
            U4,
            TU,
            "::ffff:1.2.3.4",
        ),
        *([0], {"z", "a", "m"}, {"é": 2, "e": 1}, ["b", "a"], {10, -1, 2, 16}, {10: "ten", -5: "neg"}),
        *((None, "x", -math.inf), [[], [5]]),
    ),
]
"""What the test writes to Cassandra, in COLUMNS order."""

UTC = dt.UTC
MIRROR: list[dict[str, object]] = [
    {
        **{"id": 1, "part": "edge", "seq": 1, "t": "ünïcode ✓", "a": "ascii", "vc": "varchar"},
        **{"ti": -128, "si": -32768, "i": -2147483648, "bi": -9223372036854775808},
        "vi": Decimal("-10000000000000000000000000000000000000007"),
        "de": Decimal("-12345678901234567890.123456789012345678"),
        **{"f": 3.4028235e38, "d": -1.7976931348623157e308, "b": True, "bl": b"\x00\xff\x10"},
        **{"da": dt.date(1, 1, 1), "tm": dt.time(23, 59, 59, 999999)},
        "ts": dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        "du": dt.timedelta(days=3, seconds=1, microseconds=500000),  # 3 days 00:00:01.5
        **{"u": uuid.UUID("00000000-0000-4000-8000-000000000000"), "tu": TU},
        "ip": ipaddress.IPv6Address("2001:db8::1"),
        **{"l": [3, 1, 2], "s": ["a", "b"], "m": {"k": 1, "z": -1}, "fl": ["x", "y"], "fs": [1, 3]},
        **{"fm": [[1, "one"], [2, "two"]], "tup": [7, "seven", 7.5], "nested": [[1, 2], [3]]},
    },
    {
        **{"id": 2, "part": "edge", "seq": 2, "t": "", "a": "", "vc": ""},
        **{"ti": 127, "si": 32767, "i": 2147483647, "bi": 9223372036854775807},
        **{"vi": Decimal("10000000000000000000000000000000000000000"), "de": Decimal("0.000001")},
        **{"f": -0.0, "d": 0.1, "b": False, "bl": b"", "da": dt.date(9999, 12, 31), "tm": dt.time(0, 0)},
        "ts": dt.datetime(2262, 4, 11, 23, 47, 16, 854000, tzinfo=UTC),
        **{"du": dt.timedelta(0), "u": U4, "tu": TU, "ip": ipaddress.IPv4Address("10.0.0.1")},
        **{"l": None, "s": None, "m": None},  # an empty non-frozen collection is null
        **{"fl": [], "fs": [], "fm": [], "tup": [None, None, None], "nested": []},
    },
    {
        **{"id": 3, "part": "special", "seq": 3, "t": "a'b\"c\\", "a": "~", "vc": "x"},
        **{"ti": 0, "si": 0, "i": 0, "bi": 9007199254740993, "vi": Decimal("0"), "de": Decimal("1.10")},
        **{"f": math.nan, "d": math.inf, "b": True, "bl": b"\x01", "da": dt.date(1970, 1, 1)},
        "tm": dt.time(0, 0, 0, 1),  # 1999 ns: the sub-microsecond digits are truncated
        "ts": dt.datetime(2026, 6, 1, 10, 0, tzinfo=UTC),
        "du": -dt.timedelta(days=32, microseconds=1),  # a month is 30 days; truncated toward zero
        **{"u": U4, "tu": TU, "ip": ipaddress.IPv4Address("1.2.3.4")},  # IPv4-mapped IPv6 arrives as IPv4
        **{"l": [0], "s": ["a", "m", "z"], "m": {"e": 1, "é": 2}, "fl": ["b", "a"], "fs": [-1, 2, 10, 16]},
        **{"fm": [[-5, "neg"], [10, "ten"]], "tup": [None, "x", "-Infinity"], "nested": [[], [5]]},
    },
]
"""Exactly what psycopg reads from the mirror, row by row (jsonb parsed by psycopg's default loader)."""


def exact(value: object) -> object:
    """A value with its type and full precision spelled out, so that ``==`` tells ``Decimal('1.1')`` from
    ``Decimal('1.10')``, ``-0.0`` from ``0.0``, NaN from NaN, an aware datetime from a naive one."""
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return ("datetime", value.isoformat(), value.utcoffset())
    return (type(value).__name__, repr(value))


def test_every_type_round_trips(
    cql: Any, keyspace: str, start_worker: StartWorker, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    create_cdc_keyspace(cql, keyspace, {"all_types": ALL_TYPES}, topic_prefix, kafka_bootstrap)
    marks = ", ".join("?" for _ in COLUMNS)
    insert = cql.prepare(f"INSERT INTO {keyspace}.all_types ({', '.join(COLUMNS)}) VALUES ({marks})")
    for row in ROWS:
        cql.execute(insert, row)
    # The worker's PostgreSQL sessions are not in UTC, so a timestamp that lost its time zone on the way
    # would be read as local time and show up shifted.
    worker = start_worker([keyspace], extra_env={"PGTZ": "Asia/Kolkata"})
    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [f"{topic_prefix}.{keyspace}.all_types"])
    assert_converged(cql, pg_dsn, keyspace, ["all_types"], worker)
    with psycopg.connect(pg_dsn) as conn:
        got = conn.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY id").format(
                sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.Identifier(keyspace, "all_types")
            )
        ).fetchall()
        types: dict[str, str] = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'all_types'",
                (keyspace,),
            ).fetchall()
        )
    assert len(got) == len(MIRROR)
    for record, expected in zip(got, MIRROR, strict=True):
        mirrored = dict(zip(COLUMNS, record, strict=True))
        wrong = {c: (mirrored[c], expected[c]) for c in COLUMNS if exact(mirrored[c]) != exact(expected[c])}
        assert wrong == {}, f"row {expected['id']}: column: (mirror, expected)"
    expected_types = {
        "vi": "numeric",
        "de": "numeric",
        "ts": "timestamp with time zone",
        "l": "ARRAY",
        "s": "ARRAY",
        "fl": "ARRAY",
        "fs": "ARRAY",
        "m": "jsonb",
        "fm": "jsonb",
        "tup": "jsonb",
        "nested": "jsonb",
        "ip": "inet",
        "du": "interval",
        "tm": "time without time zone",
        "bl": "bytea",
        "f": "real",
        "d": "double precision",
        "ti": "smallint",
        "si": "smallint",
        "i": "integer",
        "bi": "bigint",
        "u": "uuid",
        "tu": "uuid",
        "da": "date",
        "b": "boolean",
        "t": "text",
        "a": "text",
        "vc": "text",
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


SHORT_TTL = 6
WORKLOAD = "p int, c int, v int, w text, tags set<int>, PRIMARY KEY (p, c)"


def random_statements(
    rng: random.Random, keyspace: str, n: int, base_ts: int, short_ttl: int = 2
) -> list[str]:
    """Writes with explicit timestamps in random order, deletes of every kind, TTLs (``short_ttl`` or an
    hour), collection changes."""
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
            ttl = rng.choice([short_ttl, 3600])
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
    # Short TTLs outlast the capture latency (seconds), so that most TTL'd cells reach the mirror alive and
    # only the worker's sweep (every second in tests) can expire them there.
    for statement in random_statements(rng, keyspace, 600, base, short_ttl=SHORT_TTL):
        cql.execute(statement)

    def short_ttls_alive() -> int:
        ttls = cql.execute(f"SELECT ttl(v) FROM {keyspace}.t")
        return sum(1 for (ttl,) in ttls if ttl is not None and ttl <= SHORT_TTL)

    assert short_ttls_alive() > 0, "the workload left no live short-TTL cell: nothing for the sweep to do"
    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [f"{topic_prefix}.{keyspace}.t"])
    wait_until(
        lambda: short_ttls_alive() == 0, SHORT_TTL + 10, f"short-TTL cells still alive in {keyspace}.t"
    )
    wait_converged(cql, pg_dsn, keyspace, ["t"], worker, timeout=30)


def test_table_targets_redirect_the_mirror(
    cql: Any, keyspace: str, start_worker: StartWorker, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """``CDC_SINK__TABLE_TARGETS`` puts the mirror of ``ks.t`` in another schema under another name."""
    create_cdc_keyspace(cql, keyspace, {"t": WORKLOAD}, topic_prefix, kafka_bootstrap)
    target_schema, target_name = unique("it_target"), "renamed_t"
    targets = {f"{keyspace}.t": f"{target_schema}.{target_name}"}
    try:
        worker = start_worker([keyspace], extra_env={"CDC_SINK__TABLE_TARGETS": json.dumps(targets)})
        for statement in random_statements(random.Random(15), keyspace, 150, now_us()):
            cql.execute(statement)
        wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [f"{topic_prefix}.{keyspace}.t"])
        wait_converged(cql, pg_dsn, keyspace, ["t"], worker, timeout=30, targets=targets)
        with psycopg.connect(pg_dsn) as conn:
            where = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL, "
                "(SELECT count(*) FROM information_schema.tables WHERE table_schema = %s)",
                (f'"{target_schema}"."{target_name}"', f'"{keyspace}"."t"', keyspace),
            ).fetchone()
            assert where == (True, False, 0), (
                f"(target exists, {keyspace}.t exists, tables in {keyspace}): the mirror must be in the "
                "target only"
            )
            rows = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(target_schema, target_name))
            ).fetchone()
        assert rows is not None
        assert rows[0] == len(list(cql.execute(f"SELECT p FROM {keyspace}.t"))) > 0
    finally:
        drop_pg_schema(pg_dsn, target_schema)

"""Transforms end to end on the real stack: a table with PII and timestamp columns under a random workload
(inserts, partial updates, deletes of every kind, out-of-order ``USING TIMESTAMP``, equal-timestamp ties),
the mirror compared row by row with Cassandra's rows transformed, and no original PII value anywhere in
PostgreSQL (mirror, ``_cdc_`` columns, side tables, dead letters) nor in the worker's log.

Every original PII value carries the test's marker; masked values never do (the partial mask keeps the last
4 characters, which are digits, the email mask keeps the domain, which has no marker).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql

from app.clock import now_us
from app.testing import (
    REPO,
    StartWorker,
    WorkerProcess,
    create_cdc_keyspace,
    debezium_cell,
    debezium_source,
    produce,
    run_cdc,
    unique,
    wait_applied,
    wait_until,
    worker_health,
)
from models.transforms import hash_value, parse_rules
from tests.integration.test_pipeline_e2e import wait_converged

pytestmark = [pytest.mark.integration, pytest.mark.services("postgres", "kafka", "cassandra", "debezium")]

TABLE = """
    p int, c int, email text, phone text, ssn text, notes text, secret text, nick text,
    created timestamp, seen_ms bigint, updated_at timestamp, v int, tags set<text>,
    PRIMARY KEY (p, c)
"""
HASH_KEY = "transform-hash-key-for-tests-0123456789"
TOKEN = "transforms-test-token-0123456789"


def rules_for(keyspace: str, replacement: str = "[redacted]") -> dict[str, Any]:
    return {
        f"{keyspace}.pii": {
            "email": {"mask": "email"},
            "phone": {"mask": "partial", "keep_last": 4},
            "ssn": {"mask": "hash"},
            "notes": {"mask": "redact", "replacement": replacement},
            "secret": {"drop": True},
            "nick": {"mask": "null"},
            "created": {"timestamp": {"zone": "Europe/Paris", "as": "timestamp"}},
            "seen_ms": {"timestamp": {"from": "epoch_ms"}},
        },
        f"{keyspace}.*": {"*_at": {"timestamp": {"truncate": "second"}}},
    }


def transform_env(rules: dict[str, Any]) -> dict[str, str]:
    return {
        "CDC_TRANSFORMS": json.dumps(rules),
        "CDC_TRANSFORM_HASH_KEY": HASH_KEY,
        "CDC_WEB__TOKEN": TOKEN,
    }


class Pii:
    """Original PII values, each carrying ``marker`` (what must never reach PostgreSQL or the log)."""

    def __init__(self, marker: str, rng: random.Random) -> None:
        self.marker, self.rng = marker, rng

    def email(self) -> str:
        return f"{self.marker}.user{self.rng.randint(0, 99)}@dom{self.rng.randint(0, 3)}.example"

    def phone(self) -> str:
        return f"{self.marker}-+3361234{self.rng.randint(1000, 9999)}"

    def text(self, what: str) -> str:
        return f"{self.marker} {what} {self.rng.randint(0, 10**6)} ünïcødé"


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def random_statements(rng: random.Random, keyspace: str, pii: Pii, n: int, base_ts: int) -> list[str]:
    """Inserts, partial updates, cell/row/partition/range deletes, TTLs and collection changes, with explicit
    timestamps out of order and frequent equal timestamps."""
    t = f"{keyspace}.pii"
    out = []
    for _ in range(n):
        p, c, ts = rng.randint(0, 3), rng.randint(0, 7), base_ts + rng.randint(0, 300)
        kind = rng.choices(
            ["insert", "update", "stamps", "cell", "row", "partition", "range", "ttl", "append"],
            [30, 22, 10, 8, 6, 2, 4, 6, 6],
        )[0]
        where = f"WHERE p = {p} AND c = {c}"
        if kind == "insert":
            out.append(
                f"INSERT INTO {t} (p, c, email, phone, ssn, notes, secret, nick, v) VALUES ({p}, {c}, "
                f"{literal(pii.email())}, {literal(pii.phone())}, {literal(pii.text('ssn'))}, "
                f"{literal(pii.text('notes'))}, {literal(pii.text('secret'))}, {literal(pii.text('nick'))}, "
                f"{rng.randint(0, 9)}) USING TIMESTAMP {ts}"
            )
        elif kind == "update":
            column = rng.choice(["email", "phone", "ssn", "notes", "secret", "nick"])
            value = (
                pii.email() if column == "email" else pii.phone() if column == "phone" else pii.text(column)
            )
            out.append(f"UPDATE {t} USING TIMESTAMP {ts} SET {column} = {literal(value)} {where}")
        elif kind == "stamps":
            created = dt.datetime(2026, 3, 29, 0, 0, tzinfo=dt.UTC) + dt.timedelta(
                minutes=rng.randint(0, 240)
            )
            seen = 1_700_000_000_000 + rng.randint(0, 10**6)
            out.append(
                f"UPDATE {t} USING TIMESTAMP {ts} SET created = '{created.isoformat()}', seen_ms = {seen}, "
                f"updated_at = '2026-10-25T00:59:{rng.randint(10, 59)}.{rng.randint(0, 999):03d}Z' {where}"
            )
        elif kind == "cell":
            column = rng.choice(["email", "ssn", "secret", "nick", "created"])
            out.append(f"DELETE {column} FROM {t} USING TIMESTAMP {ts} {where}")
        elif kind == "row":
            out.append(f"DELETE FROM {t} USING TIMESTAMP {ts} {where}")
        elif kind == "partition":
            out.append(f"DELETE FROM {t} USING TIMESTAMP {ts} WHERE p = {p}")
        elif kind == "range":
            lo = rng.randint(0, 6)
            out.append(f"DELETE FROM {t} USING TIMESTAMP {ts} WHERE p = {p} AND c >= {lo} AND c < {lo + 2}")
        elif kind == "ttl":
            out.append(
                f"INSERT INTO {t} (p, c, email, v) VALUES ({p}, {c}, {literal(pii.email())}, 1) "
                f"USING TIMESTAMP {ts} AND TTL 3600"
            )
        else:
            out.append(
                f"UPDATE {t} USING TIMESTAMP {ts} SET tags = tags + {{'t{rng.randint(0, 4)}'}} {where}"
            )
    return out


def converged(cql: Any, pg_dsn: str, keyspace: str, rules: dict[str, Any], worker: WorkerProcess) -> None:
    """The mirror equals Cassandra's rows transformed by ``rules`` (waiting up to a minute)."""
    transforms = (parse_rules(rules), HASH_KEY.encode())
    wait_converged(cql, pg_dsn, keyspace, ["pii"], worker, 60, transforms=transforms)


def stored_text(pg_dsn: str, schemas: list[str]) -> Iterator[tuple[str, bytes]]:
    """Every value of every table in ``schemas`` (and the sink's own ``_cdc_`` tables in ``public``), as
    bytes: text as UTF-8, bytea as it is, anything else by its text form."""
    with psycopg.connect(pg_dsn) as conn:
        tables = conn.execute(
            """SELECT table_schema, table_name FROM information_schema.tables
               WHERE table_schema = ANY(%s) OR (table_schema = 'public' AND table_name LIKE '\\_cdc\\_%%')""",
            (schemas,),
        ).fetchall()
        assert len(tables) >= 6, tables  # the mirror, its dead rows and tombstones, and the sink's tables
        for schema, table in tables:
            for row in conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, table))):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        yield f"{schema}.{table}", bytes(value)
                    elif value is not None:
                        yield f"{schema}.{table}", str(value).encode()


def leaks(pg_dsn: str, schemas: list[str], marker: str) -> list[str]:
    return sorted({where for where, data in stored_text(pg_dsn, schemas) if marker.encode() in data})


def api(worker: WorkerProcess, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.web_port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())


def reconcile(worker: WorkerProcess, keyspace: str, *args: str) -> tuple[int, dict[str, Any]]:
    """``cdc reconcile`` of the table with every difference compared now (the worker has caught up)."""
    options = ["--table", f"{keyspace}.pii", "--ranges", "8", "--lag-allowance", "0", "--recheck-after", "0"]
    return run_cdc(worker, "reconcile", *options, *args)


def count_notes(pg_dsn: str, keyspace: str, value: str) -> int:
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE notes = %s").format(sql.Identifier(keyspace, "pii")),
            (value,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def bad_event(keyspace: str, marker: str) -> bytes:
    """A change event of the table whose ``v`` does not fit its int column, with PII beside it."""
    after = {
        "p": debezium_cell(50),
        "c": debezium_cell(0),
        "email": debezium_cell(f"{marker}@leak.example"),
        "v": debezium_cell(f"not a number {marker}"),
    }
    body = {"ts_ms": 1, "op": "i", "source": debezium_source(keyspace, "pii", now_us()), "after": after}
    return orjson.dumps(body)


def test_a_transformed_mirror_converges_and_holds_no_original_pii(
    cql: Any, keyspace: str, start_worker: StartWorker, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    create_cdc_keyspace(cql, keyspace, {"pii": TABLE}, topic_prefix, kafka_bootstrap)
    topic = f"{topic_prefix}.{keyspace}.pii"
    rules = rules_for(keyspace)
    worker = start_worker([keyspace], extra_env=transform_env(rules))
    marker = unique("PIIMARK").replace("_", "")
    rng = random.Random(20261202)
    pii = Pii(marker, rng)
    base = now_us()
    for statement in random_statements(rng, keyspace, pii, 400, base):
        cql.execute(statement)

    # Equal-timestamp writes of different values to masked columns, in both orders: in one burst (often one
    # batch), and with the second write applied after the first (a tie against the stored value).
    tie_ts = base + 10_000
    t = f"{keyspace}.pii"
    low, high = f"{marker}.amy@b.example", f"{marker}.zed@a.example"  # Cassandra keeps the greater: high
    for c, (first, second) in enumerate([(low, high), (high, low)]):
        for value in (first, second):
            cql.execute(
                f"UPDATE {t} USING TIMESTAMP {tie_ts} SET email = {literal(value)}, ssn = {literal(value)} WHERE p = 100 AND c = {c}"
            )
    for c, (first, second) in enumerate([(low, high), (high, low)], start=2):
        cql.execute(
            f"UPDATE {t} USING TIMESTAMP {tie_ts} SET email = {literal(first)}, ssn = {literal(first)} WHERE p = 100 AND c = {c}"
        )
        wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic])
        cql.execute(
            f"UPDATE {t} USING TIMESTAMP {tie_ts} SET email = {literal(second)}, ssn = {literal(second)} WHERE p = 100 AND c = {c}"
        )
    # An event that is dead-lettered, with PII in it.
    produce(kafka_bootstrap, topic, [(orjson.dumps({"p": 50, "c": 0}), bad_event(keyspace, marker))])

    wait_applied(pg_dsn, worker.app_id, kafka_bootstrap, [topic])
    converged(cql, pg_dsn, keyspace, rules, worker)

    with psycopg.connect(pg_dsn) as conn:
        ties = conn.execute(
            sql.SQL("SELECT c, email, ssn FROM {} WHERE p = 100 ORDER BY c").format(
                sql.Identifier(keyspace, "pii")
            )
        ).fetchall()
        columns = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'pii'",
                (keyspace,),
            )
        }
        letter = conn.execute(
            "SELECT id, value, error_message FROM _cdc_dlq_records WHERE topic = %s", (topic,)
        ).fetchone()
    hashed = hash_value(HASH_KEY.encode(), high)
    assert ties == [(c, "***@a.example", hashed) for c in range(4)], "ties must follow Cassandra's choice"
    assert "secret" not in columns
    assert (
        columns["email"],
        columns["ssn"],
        columns["created"],
        columns["seen_ms"],
        columns["updated_at"],
    ) == (
        "text",
        "text",
        "timestamp without time zone",
        "timestamp with time zone",
        "timestamp with time zone",
    )

    # No original value anywhere in PostgreSQL, nor in the log; the dead letter holds it sealed.
    assert letter is not None, "the bad event was not dead-lettered"
    assert leaks(pg_dsn, [keyspace], marker) == []
    assert marker not in worker.log_text()
    code, shown = run_cdc(worker, "dlq", "show", str(letter[0]))
    assert code == 0
    assert marker in json.dumps(shown["value"])  # opened with the key, for whoever may run `cdc dlq show`
    assert marker in shown["error_message"]

    # The effective rules, the hash key redacted; each plan in /health.
    config = api(worker, "/config")
    assert config["transform_hash_key"] == "***"
    assert config["transforms"][f"{keyspace}.pii"]["ssn"] == {"mask": "hash"}
    assert HASH_KEY not in json.dumps(config)

    def planned() -> bool:
        component = worker_health(worker)[1].get("components", {}).get("transforms", {})
        return component.get("status") == "up" and f"{keyspace}.pii plan" in component.get("detail", "")

    wait_until(planned, 30, lambda: f"no plan in /health: {worker_health(worker)}")

    # A masked mirror reconciles: Cassandra's rows are transformed before hashing.
    code, checked = reconcile(worker, keyspace)
    assert code == 0, checked
    assert (checked["tables"][0]["mismatches"], checked["tables"][0]["in_flight"]) == (0, 0), checked

    # A changed rule is detected at start-up: logged, shown in /health, recorded with the mirror.
    worker.stop()
    changed = start_worker(
        [keyspace], extra_env=transform_env(rules_for(keyspace, "[gone]")), app_id=worker.app_id
    )
    cql.execute(f"UPDATE {t} SET notes = {literal(pii.text('notes'))} WHERE p = 100 AND c = 0")
    wait_applied(pg_dsn, changed.app_id, kafka_bootstrap, [topic])

    def warned() -> bool:
        _, body = worker_health(changed)
        component = body.get("components", {}).get("transforms", {})
        return component.get("status") == "warn" and f"{keyspace}.pii" in component.get("detail", "")

    wait_until(warned, 60, lambda: f"no warning in /health:\n{worker_health(changed)}\n{changed.log_tail()}")
    assert "transform rules changed since the mirror was written" in changed.log_text()
    with psycopg.connect(pg_dsn) as conn:
        stored = conn.execute(
            """SELECT previous_fingerprint IS NOT NULL, changed_at IS NOT NULL, rules -> 'notes' ->> 'replacement'
               FROM _cdc_transform_plans WHERE keyspace = %s AND "table" = 'pii'""",
            (keyspace,),
        ).fetchone()
        note = conn.execute(
            sql.SQL("SELECT notes FROM {} WHERE p = 100 AND c = 0").format(sql.Identifier(keyspace, "pii"))
        ).fetchone()
    assert stored == (True, True, "[gone]")
    assert note == ("[gone]",)

    # The rows written before get the new rule through a repair; the next clean check settles the change.
    redacted = count_notes(pg_dsn, keyspace, "[redacted]")
    assert redacted > 0
    code, repaired = reconcile(changed, keyspace, "--repair")
    table = repaired["tables"][0]
    assert (code, table["mismatches"], table["repaired"]) == (0, redacted, redacted), repaired
    assert count_notes(pg_dsn, keyspace, "[redacted]") == 0
    code, clean = reconcile(changed, keyspace)
    assert code == 0, clean
    assert clean["tables"][0]["transforms_followed"] is True, clean

    def settled() -> bool:
        component = worker_health(changed)[1].get("components", {}).get("transforms", {})
        return bool(component.get("status") == "up")

    wait_until(settled, 30, lambda: f"still a warning: {worker_health(changed)}")
    converged(cql, pg_dsn, keyspace, rules_for(keyspace, "[gone]"), changed)
    assert leaks(pg_dsn, [keyspace], marker) == []
    assert marker not in changed.log_text()


def test_a_rule_that_does_not_fit_stops_the_worker_at_start_up_naming_its_key(
    cql: Any, keyspace: str, start_worker: StartWorker, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    create_cdc_keyspace(cql, keyspace, {"pii": TABLE}, topic_prefix, kafka_bootstrap)
    worker = start_worker(
        [keyspace],
        extra_env=transform_env({f"{keyspace}.pii": {"v": {"mask": "email"}, "nope": {"drop": True}}}),
    )
    assert worker.proc is not None
    assert worker.proc.wait(120) == 2
    assert (
        f'cdc: invalid configuration transforms."{keyspace}.pii".nope: no such column in {keyspace}.pii'
        in worker.log_text()
    )
    done = subprocess.run(
        [sys.executable, "-m", "app", "transforms", "check"],
        cwd=REPO,
        env={**worker.cli_env(), "CDC_TRANSFORMS": json.dumps({f"{keyspace}.pii": {"v": {"mask": "email"}}})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done
    assert (
        f'cdc: invalid configuration transforms."{keyspace}.pii".v: mask = "email" needs a text or ascii '
        "column; v is int"
    ) in done.stderr

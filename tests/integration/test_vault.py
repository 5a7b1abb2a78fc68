"""Credentials from Vault (the stack's OpenBao) while CQL writes stream through the real stack.

Each test has a database of its own, a least-privilege group role (:func:`stack.vault_setup.writer_grants`),
OpenBao's database engine configured against it with a role of its own, an AppRole the worker logs in with,
and a KV secret holding the web token and the hash key. The worker is given only references:
``postgres.password = "vault-db:ROLE"``, ``web.token = "vault:secret/PATH#web_token"``, ...

1. Dynamic credentials with a 20 s TTL (60 s at most) for 3 minutes of writes: several rotations, no failed
   batch, no dead letter, the sides equal, the old users dropped; ``cdc reconcile`` with the same settings
   finds nothing; no secret value in the log, ``/health``, ``/config`` or ``/metrics``.
2. OpenBao stopped (SIGSTOP: the process holds its in-memory state, clients time out) for 60 s: the worker
   keeps applying with its leased credentials; stopped past the grace period: the worker pauses with the
   reason on ``/health``, and resumes when OpenBao does. Nothing is lost.
3. The whole pipeline in the stack's TLS mode (``tls_stack``: Cassandra, its agent, Kafka, PostgreSQL and
   OpenBao with TLS-only listeners and passwords): the worker logs in to OpenBao over verified HTTPS, connects
   to PostgreSQL with ``sslmode=verify-full`` and
   dynamic credentials, to Kafka over SASL_SSL with SCRAM-SHA-512, to Cassandra over verified TLS as a
   SELECT-only role (both passwords Vault references); every PostgreSQL session of the worker is TLS 1.3
   and no superuser, every Cassandra client is TLS, plaintext is refused by all four, the sides converge.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cassandra.cluster import Cluster, NoHostAvailable
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from app.clock import now_us
from app.testing import (
    REPO,
    CqlWriter,
    StartWorker,
    WorkerProcess,
    compare_keyspace,
    create_cdc_keyspace,
    unique,
    wait_applied,
    wait_until,
    worker_health,
)
from stack import vault_setup
from stack.config import Settings as StackSettings
from stack.services.openbao import OpenBao
from tests.integration.workloads import RANDOM_DEFINITION, random_statements

pytestmark = [
    pytest.mark.integration,
    pytest.mark.services("postgres", "kafka", "cassandra", "debezium", "openbao"),
]

TABLE = "items"
RANDOM = "t"


class VaultDatabase:
    """A database, its group role, and OpenBao set up to lease users of it to an AppRole."""

    def __init__(self, admin_dsn: str, vault: Any, vault_addr: str, ttl_s: int, max_ttl_s: int) -> None:
        self.admin_dsn, self.vault, self.vault_addr = admin_dsn, vault, vault_addr
        self.name = unique("it_vault")
        self.group = f"{self.name}_writer"
        self.role = self.name.replace("_", "-")
        self.web_token = secrets.token_hex(16)
        self.hash_key = secrets.token_hex(16)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        vault_setup.grant_writer(self.dsn(as_admin=True), self.name, self.group)
        params = conninfo_to_dict(admin_dsn)
        tls = {k: params[k] for k in ("sslmode", "sslrootcert") if k in params}
        query = "?" + "&".join(f"{k}={v}" for k, v in tls.items()) if tls else ""
        vault_setup.configure_database(
            vault,
            connection=self.name,
            url=f"postgresql://{{{{username}}}}:{{{{password}}}}@{params['host']}:{params['port']}/{self.name}"
            + query,
            username=str(params["user"]),
            password=str(params.get("password", "trust")),  # without TLS the stack trusts local connections
            group=self.group,
            role=self.role,
            ttl_s=ttl_s,
            max_ttl_s=max_ttl_s,
        )
        vault.secrets.kv.v2.create_or_update_secret(
            path=self.name, secret={"web_token": self.web_token, "hash_key": self.hash_key}
        )
        self.role_id, self.secret_id = vault_setup.configure_approle(
            vault, self.name, vault_setup.policy(self.role, self.name)
        )

    def dsn(self, *, as_admin: bool = False) -> str:
        if as_admin:
            return make_conninfo(self.admin_dsn, dbname=self.name)
        params = conninfo_to_dict(self.admin_dsn)
        return f"postgresql://{params['host']}:{params['port']}/{self.name}"  # no user, no password, no TLS

    def worker_env(self, **extra: str) -> dict[str, str]:
        return {
            "CDC_POSTGRES__PASSWORD": f"vault-db:{self.role}",
            "CDC_POSTGRES__ROLE": self.group,
            "CDC_VAULT__ADDR": self.vault_addr,
            "CDC_VAULT__AUTH": "approle",
            "CDC_VAULT__ROLE_ID": self.role_id,
            "CDC_VAULT__SECRET_ID": self.secret_id,
            "CDC_WEB__TOKEN": f"vault:secret/{self.name}#web_token",
            "CDC_TRANSFORM_HASH_KEY": f"vault:secret/{self.name}#hash_key",
            **extra,
        }

    def secret_values(self) -> dict[str, str]:
        return {"web token": self.web_token, "hash key": self.hash_key, "AppRole secret id": self.secret_id}

    def query(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn(as_admin=True), autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def members(self) -> list[str]:
        """The dynamic users that exist now (members of the group role)."""
        rows = self.query(
            "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid "
            "JOIN pg_roles m ON m.oid = a.member WHERE g.rolname = %s ORDER BY 1",
            self.group,
        )
        return [row[0] for row in rows]

    def session_users(self) -> set[str]:
        rows = self.query("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s", self.name)
        return {row[0] for row in rows if row[0]}

    def dead_letters(self) -> int:
        rows = self.query("SELECT count(*) FROM _cdc_dlq_records")
        return int(rows[0][0])

    def mirror_rows(self, keyspace: str) -> int:
        try:
            rows = self.query(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(keyspace, TABLE)).as_string(None)
            )
        except psycopg.errors.UndefinedTable:
            return 0
        return int(rows[0][0])

    def drop(self) -> None:
        self.vault.sys.revoke_prefix(f"database/creds/{self.role}")
        self.vault.secrets.database.delete_role(self.role)
        self.vault.secrets.database.delete_connection(self.name)
        self.vault.auth.approle.delete_role(self.name)
        self.vault.sys.delete_policy(self.name)
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.group)))


@pytest.fixture
def vault_addr(stack_settings: StackSettings, vault_admin: Any) -> str:
    return f"http://{stack_settings.host}:{stack_settings.openbao_port}"


def metric_values(text: str, name: str) -> dict[str, float]:
    """``labels -> value`` of one metric in a Prometheus text exposition."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def get(worker: WorkerProcess, path: str, token: str | None = None) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as error:
        return str(error.read().decode())


def wait_equal(
    cql: Any, db: VaultDatabase, keyspace: str, worker: WorkerProcess, topic: str, bootstrap: str = ""
) -> None:
    """Applied to the end of ``topic`` (its offsets read from ``bootstrap``, default the worker's Kafka) and
    equal row by row."""

    def equal() -> bool:
        end_from = bootstrap or worker.kafka_bootstrap or ""
        wait_applied(db.dsn(as_admin=True), worker.app_id, end_from, [topic], timeout=300)
        return all(d.equal for d in compare_keyspace(cql, db.dsn(as_admin=True), keyspace, [TABLE]))

    try:
        wait_until(equal, 300, "the mirror did not converge")
    except TimeoutError as error:
        pytest.fail(f"{error}\n{worker.log_tail()}")


def vault_component(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    code, body = worker_health(worker)
    return code, body.get("components", {}).get("vault", {})


@pytest.fixture
def stream(
    cql: Any, keyspace: str, kafka_bootstrap: str, topic_prefix: str, agent_log: Path, topics: list[str]
) -> str:
    topic = f"{topic_prefix}.{keyspace}.{TABLE}"
    topics.append(topic)
    create_cdc_keyspace(
        cql,
        keyspace,
        {TABLE: CqlWriter.DEFINITION},
        topic_prefix,
        kafka_bootstrap,
        agent_log,
    )
    return topic


@pytest.fixture
def rotating(pg_dsn: str, vault_admin: Any, vault_addr: str) -> Iterator[VaultDatabase]:
    db = VaultDatabase(pg_dsn, vault_admin, vault_addr, ttl_s=20, max_ttl_s=60)
    try:
        yield db
    finally:
        db.drop()


def test_dynamic_credentials_rotate_under_a_stream_without_a_failed_batch_and_no_secret_leaks(
    cql: Any, keyspace: str, stream: str, rotating: VaultDatabase, start_worker: StartWorker
) -> None:
    db = rotating
    worker = start_worker([keyspace], pg_dsn=db.dsn(), extra_env=db.worker_env(CDC_SINK__BATCH_SIZE="50"))
    writer = CqlWriter(cql, keyspace, TABLE)
    writer.start()
    users: list[str] = []  # in the order their sessions appeared
    most_members = 0
    try:
        wait_until(lambda: worker_health(worker)[0] == 200, 120, "the worker did not become healthy")
        end = time.monotonic() + 180
        while time.monotonic() < end:
            users.extend(u for u in sorted(db.session_users()) if u.startswith("v-") and u not in users)
            most_members = max(most_members, len(db.members()))
            time.sleep(2)
    finally:
        writer.stopped.set()
        writer.join()
    wait_equal(cql, db, keyspace, worker, stream)

    assert len(users) >= 3, f"expected several rotations in 3 minutes, sessions of {users}"
    metrics = get(worker, "/metrics")
    rotations = sum(metric_values(metrics, "cdc_vault_credential_rotations_total").values())
    assert rotations >= 2, metrics
    assert sum(metric_values(metrics, "cdc_transient_retries_total").values()) == 0, "a batch failed"
    assert sum(metric_values(metrics, "cdc_dead_letters_total").values()) == 0
    assert db.dead_letters() == 0
    assert writer.count > 1000
    assert most_members <= 2, "old users outlived their rotation"
    wait_until(lambda: len(db.members()) == 1, 30, f"old users were not dropped: {db.members()}")
    assert db.members()[0] == users[-1]

    # A CLI command with the same settings leases its own credentials and sees the same truth.
    done = subprocess.run(
        [sys.executable, "-m", "app", "reconcile", "--table", f"{keyspace}.{TABLE}", "--json"],
        cwd=REPO,
        env=worker.cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    [table] = report["tables"]
    assert table["mismatches"] == 0, report

    # No secret value anywhere the worker shows things.
    token = db.web_token
    shown = {
        "log": worker.log_text() + done.stderr,
        "/health": get(worker, "/health"),
        "/config": get(worker, "/config", token),
        "/metrics": metrics,
    }
    assert '"vault"' in shown["/config"], shown["/config"]  # the authorized /config answered
    for where, text in shown.items():
        for what, value in db.secret_values().items():
            assert value not in text, f"the {what} appears in {where}"

    worker.stop()  # a clean exit revokes the lease it holds
    wait_until(lambda: db.members() == [], 30, f"the last lease was not revoked at exit: {db.members()}")


@pytest.fixture
def long_lease(pg_dsn: str, vault_admin: Any, vault_addr: str) -> Iterator[VaultDatabase]:
    db = VaultDatabase(pg_dsn, vault_admin, vault_addr, ttl_s=600, max_ttl_s=1200)
    try:
        yield db
    finally:
        db.drop()


def bao_pid(stack_settings: StackSettings) -> int:
    return int(stack_settings.pid_file("openbao").read_text().strip())


def test_vault_stopped_the_worker_applies_for_the_grace_period_then_pauses_and_resumes(
    cql: Any,
    keyspace: str,
    stream: str,
    long_lease: VaultDatabase,
    start_worker: StartWorker,
    stack_settings: StackSettings,
) -> None:
    db = long_lease
    env = db.worker_env(
        CDC_VAULT__GRACE_S="75", CDC_VAULT__TIMEOUT_S="2", CDC_SINK__CIRCUIT_PROBE_AFTER_S="2"
    )
    worker = start_worker([keyspace], pg_dsn=db.dsn(), extra_env=env)
    writer = CqlWriter(cql, keyspace, TABLE)
    writer.start()
    pid = bao_pid(stack_settings)
    try:
        wait_until(lambda: db.mirror_rows(keyspace) > 20, 120, "nothing was applied")

        # 1. stopped for 60 s (within the 75 s grace period): applying goes on.
        os.kill(pid, signal.SIGSTOP)
        try:
            before = db.mirror_rows(keyspace)
            time.sleep(30)
            noticed = vault_component(worker)[1]
            time.sleep(30)
            during = db.mirror_rows(keyspace) - before
            code = worker_health(worker)[0]
        finally:
            os.kill(pid, signal.SIGCONT)
        assert noticed.get("status") == "warn", noticed  # Vault's absence is shown, not a failure
        assert "using cached credentials" in noticed.get("detail", ""), noticed
        assert code == 200
        assert during > 300, f"only {during} rows applied while Vault was stopped"
        wait_until(lambda: vault_component(worker)[1].get("status") == "up", 60, "Vault not seen up again")

        # 2. stopped past the grace period: the stream pauses, /health says why; it resumes after.
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: (
                    vault_component(worker)[0] == 503
                    and "grace period" in vault_component(worker)[1].get("detail", "")
                ),
                150,
                "the worker did not pause past the grace period",
            )
            time.sleep(5)  # a batch in flight when it paused commits
            paused_at = db.mirror_rows(keyspace)
            time.sleep(10)
            assert db.mirror_rows(keyspace) == paused_at, "applied past the grace period"
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(lambda: worker_health(worker)[0] == 200, 90, "the worker did not resume")
        wait_until(lambda: db.mirror_rows(keyspace) > paused_at, 60, "nothing applied after resuming")
    finally:
        writer.stopped.set()
        writer.join()
        os.kill(pid, signal.SIGCONT)
    wait_equal(cql, db, keyspace, worker, stream)
    assert db.dead_letters() == 0


@pytest.fixture
def tls_keyspace(tls_stack: StackSettings) -> Iterator[tuple[Any, str]]:
    """A superuser session on the TLS stack's Cassandra and a fresh keyspace name (dropped afterwards)."""
    cluster = Cluster([tls_stack.host], port=tls_stack.cassandra_port, **tls_stack.cassandra_client_kwargs())
    session = cluster.connect()
    session.default_timeout = 30
    name = unique("it_vault_tls")
    try:
        yield session, name
        session.execute(f"DROP KEYSPACE IF EXISTS {name}")
    finally:
        cluster.shutdown()


def test_the_whole_pipeline_converges_with_tls_and_passwords_everywhere_and_least_privilege(
    tls_stack: StackSettings, tls_keyspace: tuple[Any, str], start_worker: StartWorker
) -> None:
    s = tls_stack
    bao = OpenBao()
    vault_admin, vault_addr, vault_ca = bao.client(s), bao.addr(s), str(bao.ca_file(s))
    cql, keyspace = tls_keyspace
    kafka_auth = s.kafka_client_kwargs()
    topic = f"{s.topic_prefix}.{keyspace}.{TABLE}"
    create_cdc_keyspace(
        cql,
        keyspace,
        {TABLE: CqlWriter.DEFINITION, RANDOM: RANDOM_DEFINITION},
        s.topic_prefix,
        s.kafka_bootstrap,
        s.log_file("debezium"),
        kafka_auth=kafka_auth,
    )
    topics = [topic, f"{s.topic_prefix}.{keyspace}.{RANDOM}"]
    seed = random.randrange(1 << 30)
    workload = random_statements(random.Random(seed), f"{keyspace}.{RANDOM}", 600, now_us())
    db = VaultDatabase(s.pg_dsn, vault_admin, vault_addr, ttl_s=600, max_ttl_s=1200)
    vault_admin.secrets.kv.v2.patch(
        path=db.name,
        secret={"kafka_password": s.kafka_password, "cassandra_password": s.cassandra_reader_password},
    )
    try:
        ca = str(s.tls_dir / "ca.pem")
        env = db.worker_env(
            CDC_VAULT__CA_FILE=vault_ca,
            CDC_POSTGRES__SSLMODE="verify-full",
            CDC_POSTGRES__SSLROOTCERT=ca,
            CDC_KAFKA__SECURITY_PROTOCOL="SASL_SSL",
            CDC_KAFKA__SASL_MECHANISM="SCRAM-SHA-512",
            CDC_KAFKA__SASL_USERNAME=s.kafka_user,
            CDC_KAFKA__SASL_PASSWORD=f"vault:secret/{db.name}#kafka_password",
            CDC_KAFKA__TLS__CA_FILE=ca,
            CDC_CASSANDRA__USERNAME=s.cassandra_reader,
            CDC_CASSANDRA__PASSWORD=f"vault:secret/{db.name}#cassandra_password",
            CDC_CASSANDRA__TLS__ENABLED="true",
            CDC_CASSANDRA__TLS__CA_FILE=ca,
        )
        worker = start_worker(
            [keyspace],
            pg_dsn=db.dsn(),
            kafka_bootstrap=s.kafka_bootstrap,
            topic_prefix=s.topic_prefix,
            cassandra_host=s.host,
            cassandra_port=s.cassandra_port,
            extra_env=env,
        )
        writer = CqlWriter(cql, keyspace, TABLE)
        writer.start()
        try:
            for statement in workload:  # out-of-order writes, deletes of every kind, set additions
                cql.execute(statement)
            wait_until(lambda: db.mirror_rows(keyspace) > 100, 180, "nothing was applied over TLS")
            sessions = db.query(
                "SELECT a.usename, s.ssl, s.version, r.rolsuper FROM pg_stat_activity a "
                "JOIN pg_stat_ssl s ON s.pid = a.pid JOIN pg_roles r ON r.rolname = a.usename "
                "WHERE a.datname = %s AND a.usename LIKE 'v-%%'",
                db.name,
            )
            clients = list(cql.execute("SELECT username, ssl_enabled FROM system_views.clients"))
        finally:
            writer.stopped.set()
            writer.join()

        def equal() -> bool:
            wait_applied(db.dsn(as_admin=True), worker.app_id, s.kafka_bootstrap, topics, 300, kafka_auth)
            diffs = compare_keyspace(cql, db.dsn(as_admin=True), keyspace, [TABLE, RANDOM])
            return all(d.equal for d in diffs)

        try:
            wait_until(equal, 300, f"the mirror did not converge (workload seed {seed})")
        except TimeoutError as error:
            pytest.fail(f"{error}\n{worker.log_tail()}")
        assert db.dead_letters() == 0
        assert sessions, "no PostgreSQL session of the worker"
        assert {(ssl, version, superuser) for _, ssl, version, superuser in sessions} == {
            (True, "TLSv1.3", False)
        }, sessions
        # Cassandra: every client over TLS; the worker as the SELECT-only role (the test itself as superuser).
        assert {c.username for c in clients} == {s.cassandra_reader, s.cassandra_user}, clients
        assert all(c.ssl_enabled for c in clients), clients

        # Plaintext is refused by all four.
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(make_conninfo(db.dsn(as_admin=True), sslmode="disable")).close()
        assert not plaintext_kafka_answers(s.kafka_bootstrap)
        # OpenBao answers "Client sent an HTTP request to an HTTPS server".
        plain_vault = httpx.get(vault_addr.replace("https:", "http:") + "/v1/sys/health", timeout=10)
        assert plain_vault.status_code == 400, plain_vault.text
        plain = Cluster([s.host], port=s.cassandra_port, connect_timeout=5)
        with pytest.raises(NoHostAvailable):
            plain.connect()
        plain.shutdown()
        for secret in (s.kafka_password, s.cassandra_reader_password):
            assert secret_absent(worker, secret, db.web_token)
        worker.stop()
    finally:
        db.drop()


def plaintext_kafka_answers(bootstrap: str) -> bool:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    async def attempt() -> bool:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(producer.start(), 15)
        except (KafkaConnectionError, TimeoutError):
            return False
        finally:
            await producer.stop()
        return True

    return asyncio.run(attempt())


def secret_absent(worker: WorkerProcess, secret: str, token: str) -> bool:
    """A secret read from Vault is nowhere the worker shows things."""
    shown = (
        worker.log_text() + get(worker, "/health") + get(worker, "/metrics") + get(worker, "/config", token)
    )
    return secret not in shown

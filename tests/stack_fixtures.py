"""Session fixtures for the local stack (registered from tests/conftest.py).

Tests declare the services they need with ``@pytest.mark.services("postgres", "kafka", ...)`` (or a
module-level ``pytestmark``). Before the first test that needs services, the session starts the union of
the services of all *selected* tests (plus their dependencies) with :func:`stack.control.up`, which reuses
services that are already running. At session end it stops only the services that were not running before
(never pre-existing ones). A service that fails to start fails every test that needs it with the stack's
own error message and log tail.

``CDC_TEST_USE_TESTCONTAINERS=1`` with a reachable Docker engine runs postgres and kafka in containers
instead (kafka only when no selected test needs the Debezium agent, which publishes to the local broker);
cassandra and debezium always run locally.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stack import control, process
from stack.config import Settings
from stack.errors import StackError
from stack.services import SERVICES

MARKER = "services"
PG_DSN_ENV = "CDC_TEST_PG_DSN"
TESTCONTAINERS_ENV = "CDC_TEST_USE_TESTCONTAINERS"


def marker_services(item: pytest.Item) -> set[str]:
    """The service names of every ``services`` marker on ``item`` (function, class and module level)."""
    names: set[str] = set()
    for mark in item.iter_markers(name=MARKER):
        for arg in mark.args:
            if isinstance(arg, str):
                names.add(arg)
            else:
                names.update(arg)
    return names


def services_union(items: Iterable[pytest.Item]) -> set[str]:
    names: set[str] = set()
    for item in items:
        names |= marker_services(item)
    return names


def external(names: Iterable[str]) -> set[str]:
    """Drop services provided from outside the stack (``CDC_TEST_PG_DSN`` replaces postgres)."""
    return set(names) - ({"postgres"} if os.environ.get(PG_DSN_ENV) else set())


def closure(names: Iterable[str], s: Settings) -> list[str]:
    """``names`` plus their dependencies, in start order (raises StackError for an unknown name)."""
    return [svc.name for svc in control.with_deps(names, s)]


def stop_order(names: Iterable[str], s: Settings) -> list[str]:
    """``names`` in stop order (dependents first), without adding anything that depends on them."""
    chosen = set(names)
    if not chosen:
        return []
    return [svc.name for svc in control.with_dependents(chosen, s) if svc.name in chosen]


def format_error(err: StackError) -> str:
    return "\n".join([f"stack: error: {err.message}", *(f"  {line}" for line in err.detail)])


@dataclass
class StackSession:
    """What this pytest session ensured, started and must stop."""

    settings: Settings
    echo: Callable[[str], None]
    ready: set[str] = field(default_factory=set)
    started: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    containers: dict[str, Any] = field(default_factory=dict)

    def running(self, name: str) -> bool:
        return control.pid_of(SERVICES[name], self.settings) is not None

    def ensure(self, names: Iterable[str]) -> None:
        """Start what is missing of ``names`` (+ deps); remember failures instead of raising."""
        try:
            wanted = [
                n for n in closure(names, self.settings) if n not in self.ready and n not in self.failed
            ]
        except StackError as err:
            for name in names:
                self.failed.setdefault(name, format_error(err))
            return
        wanted = [n for n in wanted if not self._in_container(n)]
        if not wanted:
            return
        before = {n for n in wanted if self.running(n)}
        try:
            control.up(wanted, self.settings, self.echo)
        except StackError as err:
            message = format_error(err)
            for name in wanted:
                if self.running(name) and name not in before:
                    self.started.append(name)
                if not self._healthy(name):
                    self.failed[name] = message
                else:
                    # Started but never awaited (another service failed first): finish its set-up (e.g.
                    # PostgreSQL's CREATE DATABASE), or every test using it fails on a missing database.
                    control.finish(name, self.settings)
                    self.ready.add(name)
            return
        self.started.extend(n for n in wanted if n not in before)
        self.ready.update(wanted)

    def _healthy(self, name: str) -> bool:
        return bool(control.service_status(SERVICES[name], self.settings)["healthy"])

    def _in_container(self, name: str) -> bool:
        return name in self.containers

    def check(self, names: Iterable[str]) -> None:
        """Fail the current test when one of ``names`` could not be started."""
        for name in sorted(set(names)):
            if name in self.failed:
                pytest.fail(f"service {name!r} is not available:\n{self.failed[name]}", pytrace=False)

    def stop_started(self) -> None:
        for name in stop_order(self.started, self.settings):
            pid = control.pid_of(SERVICES[name], self.settings)
            if pid is None:
                continue
            self.echo(f"{name}: stopping (pid {pid}), started by the test session")
            process.stop(pid, SERVICES[name].stop_signal, self.settings.stop_timeout)
            self.settings.pid_file(name).unlink(missing_ok=True)
        self.started.clear()
        for container in self.containers.values():
            with contextlib.suppress(Exception):
                container.stop()
        self.containers.clear()

    # --- testcontainers (opt-in) -------------------------------------------------------------------

    def start_containers(self, needed: set[str]) -> None:
        """Run postgres (and kafka unless debezium is needed) in Docker containers."""
        candidates = {"postgres"} | ({"kafka"} if "debezium" not in needed else set())
        for name in sorted(candidates & needed):
            try:
                if name == "postgres":
                    from testcontainers.community.postgres import PostgresContainer

                    pg = PostgresContainer(
                        "postgres:15", username="postgres", password="postgres", dbname="cdc"
                    )
                    self.containers[name] = pg.start()
                else:
                    from testcontainers.community.kafka import KafkaContainer

                    self.containers[name] = KafkaContainer().with_kraft().start()
            except Exception as exc:  # Docker failures: report like a stack error
                self.failed[name] = f"testcontainers: cannot start {name}: {exc}"
            else:
                self.ready.add(name)
                self.echo(f"{name}: running in a container (testcontainers)")

    def pg_dsn(self) -> str:
        pg = self.containers.get("postgres")
        if pg is None:
            return self.settings.pg_dsn
        host, port = pg.get_container_host_ip(), pg.get_exposed_port(5432)
        return f"postgresql://postgres:postgres@{host}:{port}/cdc"

    def kafka_bootstrap(self) -> str:
        kafka = self.containers.get("kafka")
        return self.settings.kafka_bootstrap if kafka is None else str(kafka.get_bootstrap_server())


def docker_available() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def use_testcontainers() -> bool:
    return os.environ.get(TESTCONTAINERS_ENV) == "1" and docker_available()


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    try:
        return Settings.from_env()
    except StackError as err:
        pytest.fail(format_error(err), pytrace=False)


@pytest.fixture(scope="session")
def stack_session(request: pytest.FixtureRequest, stack_settings: Settings) -> Iterator[StackSession]:
    """Starts the union of the selected tests' services once; stops what it started at session end."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def echo(line: str) -> None:
        text = f"[stack] {line}"
        if reporter is not None:
            reporter.write_line(text)
        else:
            print(text, file=sys.stderr)

    session = StackSession(stack_settings, echo)
    needed = external(services_union(request.session.items))
    if needed and use_testcontainers():
        session.start_containers(needed)
    try:
        if needed:
            session.ensure(needed)
        yield session
    finally:
        session.stop_started()


@pytest.fixture(autouse=True)
def _stack_services(request: pytest.FixtureRequest) -> None:
    """Before a test with a ``services`` marker: make sure its services run, or fail it with the cause."""
    names = external(marker_services(request.node))
    if not names:
        return
    session: StackSession = request.getfixturevalue("stack_session")
    session.ensure(names)
    session.check(names)


def _need(session: StackSession, *names: str) -> None:
    session.ensure(names)
    session.check(names)


@pytest.fixture(scope="session")
def stack_status(stack_session: StackSession) -> dict[str, Any]:
    """``python -m stack status --json`` as a dict (taken once the session's services are up)."""
    return control.status(stack_session.settings)


@pytest.fixture(scope="session")
def pg_dsn(stack_session: StackSession) -> str:
    """DSN of the stack's PostgreSQL (``CDC_TEST_PG_DSN`` overrides it and skips starting postgres)."""
    override = os.environ.get(PG_DSN_ENV)
    if override:
        return override
    _need(stack_session, "postgres")
    return stack_session.pg_dsn()


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_session: StackSession) -> str:
    _need(stack_session, "kafka")
    return stack_session.kafka_bootstrap()


@pytest.fixture(scope="session")
def cassandra_contact(stack_session: StackSession) -> tuple[str, int]:
    _need(stack_session, "cassandra")
    return stack_session.settings.host, stack_session.settings.cassandra_port


@pytest.fixture(scope="session")
def topic_prefix(stack_settings: Settings) -> str:
    return stack_settings.topic_prefix


@pytest.fixture(scope="session")
def registry_url(stack_session: StackSession) -> str:
    """Confluent-compatible API of the stack's schema registry (Apicurio)."""
    _need(stack_session, "apicurio")
    return stack_session.settings.registry_url


@pytest.fixture(scope="session")
def agent_log(stack_session: StackSession) -> Path:
    """The Debezium agent's log file (what :func:`app.testing.create_cdc_keyspace` waits on)."""
    _need(stack_session, "debezium")
    return stack_session.settings.log_file("debezium")


@pytest.fixture(scope="session")
def vault_admin(stack_session: StackSession) -> Any:
    """An hvac client with the stack's OpenBao root token."""
    import hvac

    _need(stack_session, "openbao")
    settings = stack_session.settings
    return hvac.Client(url=f"http://{settings.host}:{settings.openbao_port}", token=settings.openbao_token)

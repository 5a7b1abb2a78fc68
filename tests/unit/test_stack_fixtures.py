"""tests/stack_fixtures.py: which services a session starts, which it stops, and how failures surface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stack import control, process
from stack.config import Settings
from stack.errors import StackError
from tests import stack_fixtures as sf


class FakeItem:
    def __init__(self, *marks: pytest.MarkDecorator) -> None:
        self.marks = [m.mark for m in marks]

    def iter_markers(self, name: str) -> list[pytest.Mark]:
        return [m for m in self.marks if m.name == name]


def test_union_of_markers() -> None:
    items = [
        FakeItem(pytest.mark.services("postgres")),
        FakeItem(pytest.mark.services("kafka", "cassandra"), pytest.mark.services("debezium")),
        FakeItem(pytest.mark.integration),
    ]
    assert sf.services_union(items) == {"postgres", "kafka", "cassandra", "debezium"}  # type: ignore[arg-type]
    assert sf.marker_services(items[2]) == set()  # type: ignore[arg-type]


def test_closure_and_stop_order() -> None:
    s = Settings()
    assert sf.closure(["debezium"], s) == ["kafka", "cassandra", "debezium"]
    assert sf.stop_order(["kafka", "debezium", "postgres"], s) == ["debezium", "kafka", "postgres"]
    assert sf.stop_order(["kafka"], s) == ["kafka"]  # never adds a (pre-existing) dependent
    assert sf.stop_order([], s) == []


def test_pg_dsn_override_drops_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sf.PG_DSN_ENV, raising=False)
    assert sf.external({"postgres", "kafka"}) == {"postgres", "kafka"}
    monkeypatch.setenv(sf.PG_DSN_ENV, "postgresql://x@h/db")
    assert sf.external({"postgres", "kafka"}) == {"kafka"}


@pytest.fixture
def fake_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A stack where ``kafka`` already runs; ``up`` starts the rest unless listed in ``state['broken']``."""
    state: dict[str, Any] = {
        "running": {"kafka": 100},
        "stopped": [],
        "broken": set(),
        "up_calls": [],
        "finished": [],
    }

    def up(names: list[str], s: Settings, echo: Any) -> None:
        state["up_calls"].append(list(names))
        for n in names:
            if n in state["broken"]:
                raise StackError(f"{n} not ready after 1s", [f"--- last lines of {n}.log ---", "boom"])
            state["running"].setdefault(n, 200 + len(state["running"]))

    def stop(pid: int, sig: int, timeout: float) -> bool:
        name = next(n for n, p in state["running"].items() if p == pid)
        state["stopped"].append(name)
        del state["running"][name]
        return False

    monkeypatch.setattr(control, "up", up)
    monkeypatch.setattr(control, "pid_of", lambda svc, s: state["running"].get(svc.name))
    monkeypatch.setattr(control, "service_status", lambda svc, s: {"healthy": svc.name in state["running"]})
    monkeypatch.setattr(process, "stop", stop)
    monkeypatch.setattr(control, "finish", lambda name, s: state["finished"].append(name))
    state["session"] = sf.StackSession(Settings(dir=tmp_path), echo=lambda line: None)
    return state


def test_starts_union_once_and_stops_only_what_it_started(fake_stack: dict[str, Any]) -> None:
    session: sf.StackSession = fake_stack["session"]
    session.ensure({"debezium"})
    session.ensure({"kafka", "cassandra"})  # already ensured: no second up
    assert fake_stack["up_calls"] == [["kafka", "cassandra", "debezium"]]
    assert session.started == ["cassandra", "debezium"]
    session.check({"debezium", "kafka"})  # no failure
    session.stop_started()
    assert fake_stack["stopped"] == ["debezium", "cassandra"]
    assert fake_stack["running"] == {"kafka": 100}  # the pre-existing broker keeps running


def test_failed_service_fails_the_tests_that_need_it(fake_stack: dict[str, Any]) -> None:
    fake_stack["broken"] = {"cassandra"}
    session: sf.StackSession = fake_stack["session"]
    session.ensure({"debezium", "postgres"})
    assert session.failed.keys() == {"cassandra", "debezium"}  # debezium depends on the broken node
    assert session.ready == {"postgres", "kafka"}
    assert sorted(fake_stack["finished"]) == ["kafka", "postgres"]  # their set-up done though up() failed
    session.check({"kafka", "postgres"})  # unaffected tests run
    with pytest.raises(pytest.fail.Exception) as info:
        session.check({"debezium"})
    assert str(info.value) == (
        "service 'debezium' is not available:\n"
        "stack: error: cassandra not ready after 1s\n"
        "  --- last lines of cassandra.log ---\n"
        "  boom"
    )
    session.ensure({"debezium"})  # a known failure is not retried
    assert len(fake_stack["up_calls"]) == 1


def test_unknown_service_name_fails_clearly(fake_stack: dict[str, Any]) -> None:
    session: sf.StackSession = fake_stack["session"]
    session.ensure({"kafak"})
    with pytest.raises(
        pytest.fail.Exception, match=r"stack: error: unknown service 'kafak' \(known: postgres"
    ):
        session.check({"kafak"})

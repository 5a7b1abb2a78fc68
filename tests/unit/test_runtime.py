"""app.runtime through the applier's in-memory ports: transient failures are retried and shown in health,
a fenced batch is dropped and its claims released, an unexpected error isolates the failing record."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import psycopg
from prometheus_client import REGISTRY

from app.health import health
from app.runtime import Runtime
from app.settings import load_settings
from app.sink.applier import Applier
from app.sink.failures import classify
from app.sink.registry import TableEntry
from app.testing import cql_table, debezium_cell, debezium_source
from models.batch import Record
from models.merge_plan import Plan
from tests.unit.fakes import MemoryLedger, MemoryPool, MemoryReader, MemoryRegistry, MemoryStore

TOPIC = "cdc.ks.t"
T = cql_table("ks", "t", {"id": "int"}, columns={"name": "text"})


def insert(offset: int, key: int) -> Record:
    import orjson

    after = {"id": debezium_cell(key), "name": debezium_cell(f"n{key}")}
    value = {"op": "i", "source": debezium_source("ks", "t", 1_700_000_000_000_000 + offset), "after": after}
    return Record(TOPIC, 0, offset, orjson.dumps({"id": key}), orjson.dumps(value))


class FlakyStore(MemoryStore):
    """Fails like a lost PostgreSQL connection the first ``failures`` times it writes (a class attribute:
    the fake transaction rolls the instance's state back, not this count)."""

    failures: ClassVar[int] = 0

    def write(self, conn: Any, plan: Plan, now_us: int) -> None:
        if FlakyStore.failures:
            FlakyStore.failures -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        super().write(conn, plan, now_us)


def retries(error: str) -> float:
    return REGISTRY.get_sample_value("cdc_transient_retries_total", {"error": error}) or 0.0


def runtime_with(store: MemoryStore) -> tuple[Runtime, Applier, MemoryLedger]:
    ledger = MemoryLedger()
    registry = MemoryRegistry({("ks", "t"): TableEntry(T, store)})
    applier = Applier(MemoryPool([store, ledger]), registry, MemoryReader(), group_id="g", ledger=ledger)
    runtime = Runtime(load_settings())
    runtime.applier = applier  # started: no connections are opened
    applier.claim([(TOPIC, 0)])
    return runtime, applier, ledger


def test_a_transient_failure_is_retried_and_shown_in_health() -> None:
    store = FlakyStore()
    FlakyStore.failures = 2
    runtime, _, ledger = runtime_with(store)
    before = retries("OperationalError")
    outcome = asyncio.run(runtime.process([insert(0, 1)]))
    assert outcome is not None
    assert set(store.rows) == {(1,)}
    assert ledger.offsets == {(TOPIC, 0): 1}
    assert retries("OperationalError") - before == 2
    assert health.components["postgres"].status == "up"  # marked down while retrying, up once it worked


def test_a_fenced_batch_is_dropped_and_its_claims_released() -> None:
    runtime, applier, ledger = runtime_with(MemoryStore())
    ledger.claim(None, "g", [(TOPIC, 0)])  # another worker took the partition
    assert asyncio.run(runtime.process([insert(0, 1)])) is None
    assert (TOPIC, 0) not in applier.claims


def test_an_unexpected_error_dead_letters_only_the_failing_record() -> None:
    store = MemoryStore(fail_on=(2,))
    runtime, _, ledger = runtime_with(store)
    outcome = asyncio.run(runtime.process([insert(0, 1), insert(1, 2), insert(2, 3)]))
    assert outcome is not None
    assert [(d.record.offset, d.reason) for d in ledger.dead_letters] == [(1, "internal_error")]
    assert set(store.rows) == {(1,), (3,)}


class RefusingStore(MemoryStore):
    """Refused like a revoked privilege the first ``failures`` times it writes (systemic)."""

    failures: ClassVar[int] = 0

    def write(self, conn: Any, plan: Plan, now_us: int) -> None:
        if RefusingStore.failures:
            RefusingStore.failures -= 1
            raise psycopg.errors.InsufficientPrivilege("permission denied for table t")
        super().write(conn, plan, now_us)


def test_a_systemic_failure_pauses_and_resumes_without_dead_letters() -> None:
    store = RefusingStore()
    RefusingStore.failures = 2
    runtime, _, ledger = runtime_with(store)
    outcome = asyncio.run(runtime.process([insert(0, 1), insert(1, 2)]))
    assert outcome is not None
    assert ledger.dead_letters == []
    assert set(store.rows) == {(1,), (2,)}
    assert REGISTRY.get_sample_value("cdc_paused", {"dependency": "postgres", "kind": "systemic"}) == 0.0


def test_health_stays_down_until_the_failing_operation_itself_succeeds() -> None:
    runtime, _, _ = runtime_with(MemoryStore())
    error = psycopg.errors.InsufficientPrivilege("permission denied for table t")
    runtime._failed("apply", error, classify(error), 1)
    assert health.components["postgres"].status == "down"
    assert health.components["postgres"].detail.startswith("systemic: psycopg.errors.InsufficientPrivilege")
    runtime._recovered("sweep")  # another operation working does not hide the paused batch
    assert health.components["postgres"].status == "down"
    runtime._recovered("apply")
    assert str(health.components["postgres"].status) == "up"

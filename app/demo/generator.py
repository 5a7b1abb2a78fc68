"""A realistic write mix against the demo keyspace, at a fixed rate.

The planner is pure and deterministic for a seed (unit-tested); :func:`run` is the I/O shell that prepares the
statements and executes the planned writes with bounded concurrency at the requested rate.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from ipaddress import IPv4Address
from threading import Semaphore
from typing import Any

from cassandra.util import Duration

from app.demo.pacing import paced
from app.demo.schema import KEYSPACE

TENANTS = ("acme", "globex", "initech", "umbrella")

STATEMENTS: dict[str, str] = {
    "customer_insert": f"""INSERT INTO {KEYSPACE}.customers (tenant, customer_id, name, email, handle, age,
        loyalty_level, visits, points, big_score, lifetime_value, rating, balance, active, avatar, birthday,
        preferred_time, created_at, membership, last_ip, session_id, tags, phones, preferences, location,
        coords)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
    "customer_update": f"UPDATE {KEYSPACE}.customers SET visits = ?, rating = ?, balance = ? "
    "WHERE tenant = ? AND customer_id = ?",
    "customer_append": f"UPDATE {KEYSPACE}.customers SET tags = tags + ?, phones = phones + ?, "
    "preferences[?] = ? WHERE tenant = ? AND customer_id = ?",
    "customer_remove": f"UPDATE {KEYSPACE}.customers SET tags = tags - ? WHERE tenant = ? AND customer_id = ?",
    "customer_cell_delete": f"DELETE email, handle FROM {KEYSPACE}.customers WHERE tenant = ? AND customer_id = ?",
    "customer_delete": f"DELETE FROM {KEYSPACE}.customers WHERE tenant = ? AND customer_id = ?",
    "order_insert": f"""INSERT INTO {KEYSPACE}.orders (tenant, customer_id, order_ts, order_id, status, total,
        quantity, items, labels, notes, discounts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
    "order_update": f"UPDATE {KEYSPACE}.orders SET status = ? "
    "WHERE tenant = ? AND customer_id = ? AND order_ts = ? AND order_id = ?",
    "order_delete": f"DELETE FROM {KEYSPACE}.orders "
    "WHERE tenant = ? AND customer_id = ? AND order_ts = ? AND order_id = ?",
    "order_partition_delete": f"DELETE FROM {KEYSPACE}.orders WHERE tenant = ? AND customer_id = ?",
    "order_range_delete": f"DELETE FROM {KEYSPACE}.orders "
    "WHERE tenant = ? AND customer_id = ? AND order_ts >= ? AND order_ts < ?",
    "reading_ttl_insert": f"INSERT INTO {KEYSPACE}.readings (device_id, day, seq, kind, value, raw, flags) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
}

# Relative weights of the write mix.
MIX: dict[str, int] = {
    "customer_insert": 20,
    "customer_update": 12,
    "customer_append": 5,
    "customer_remove": 2,
    "customer_cell_delete": 3,
    "customer_delete": 3,
    "order_insert": 25,
    "order_update": 8,
    "order_delete": 4,
    "order_partition_delete": 1,
    "order_range_delete": 2,
    "reading_ttl_insert": 15,
}


@dataclass(frozen=True)
class Write:
    statement: str
    params: tuple[Any, ...]


@dataclass
class Planner:
    """Plans writes; remembers recent keys so updates and deletes hit rows that exist."""

    seed: int = 0
    memory: int = 2000
    rng: random.Random = field(init=False)
    customers: deque[tuple[str, uuid.UUID]] = field(init=False)
    orders: deque[tuple[str, uuid.UUID, datetime, uuid.UUID]] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311  (test data, not crypto)
        self.customers = deque(maxlen=self.memory)
        self.orders = deque(maxlen=self.memory)

    def writes(self) -> Iterator[Write]:
        kinds, weights = zip(*MIX.items(), strict=True)
        while True:
            kind = self.rng.choices(kinds, weights)[0]
            write = getattr(self, "_" + kind)()
            if write is not None:
                yield write

    # -- values -------------------------------------------------------------------------------------------
    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def _timeuuid(self) -> uuid.UUID:
        return uuid.uuid1(node=self.rng.getrandbits(48), clock_seq=self.rng.getrandbits(14))

    def _customer_key(self) -> tuple[str, uuid.UUID] | None:
        return self.rng.choice(self.customers) if self.customers else None

    def _location(self) -> tuple[Any, ...]:
        r = self.rng
        return (
            f"{r.randint(1, 999)} Main St",
            r.choice(["Oslo", "Lyon", "Austin"]),
            r.randint(1000, 99999),
            (round(r.uniform(-90, 90), 6), round(r.uniform(-180, 180), 6)),
        )

    # -- customers ----------------------------------------------------------------------------------------
    def _customer_insert(self) -> Write:
        r = self.rng
        key = (r.choice(TENANTS), self._uuid())
        self.customers.append(key)
        now = datetime.now(UTC).replace(microsecond=r.randrange(0, 1000) * 1000)
        row = (
            f"Customer {r.randint(1, 10**6)}",
            f"user{r.randint(1, 10**6)}@example.com",
            f"h{r.randint(1, 999)}",
            r.randint(-128, 127),
            r.randint(-(2**15), 2**15 - 1),
            r.randint(0, 10**6),
            r.randint(-(2**63), 2**63 - 1),
            r.randint(-(10**30), 10**30),
            Decimal(f"{r.randint(-(10**12), 10**12)}.{r.randint(0, 10**6):06d}"),
            r.uniform(-1e6, 1e6),
            r.uniform(-1e12, 1e12),
            r.random() < 0.5,
            r.randbytes(r.randint(0, 32)),
            date(1950, 1, 1) + timedelta(days=r.randint(0, 25_000)),
            r.randint(0, 86_400 * 10**9 - 1),
            now,
            Duration(r.randint(0, 24), r.randint(0, 30), r.randint(0, 86_400 * 10**9)),
            str(IPv4Address(r.getrandbits(32))),
            self._timeuuid(),
            {f"tag{r.randint(1, 20)}" for _ in range(r.randint(0, 3))},
            [f"+47{r.randint(10**7, 10**8 - 1)}" for _ in range(r.randint(0, 2))],
            {f"pref{r.randint(1, 9)}": r.choice(["on", "off"]) for _ in range(r.randint(0, 3))},
            self._location(),
            (r.randint(0, 100), r.choice(["x", "y"]), r.uniform(0, 1)),
        )
        return Write("customer_insert", (*key, *row))

    def _customer_update(self) -> Write | None:
        key, r = self._customer_key(), self.rng
        if key is None:
            return None
        return Write("customer_update", (r.randint(0, 10**6), r.uniform(0, 5), r.uniform(-1e6, 1e6), *key))

    def _customer_append(self) -> Write | None:
        key, r = self._customer_key(), self.rng
        if key is None:
            return None
        return Write(
            "customer_append",
            (
                {f"tag{r.randint(1, 20)}"},
                [f"+1{r.randint(10**9, 10**10 - 1)}"],
                f"pref{r.randint(1, 9)}",
                r.choice(["on", "off"]),
                *key,
            ),
        )

    def _customer_remove(self) -> Write | None:
        key = self._customer_key()
        if key is None:
            return None
        return Write("customer_remove", ({f"tag{self.rng.randint(1, 20)}"}, *key))

    def _customer_cell_delete(self) -> Write | None:
        key = self._customer_key()
        return None if key is None else Write("customer_cell_delete", key)

    def _customer_delete(self) -> Write | None:
        key = self._customer_key()
        if key is None:
            return None
        self.customers.remove(key)
        return Write("customer_delete", key)

    # -- orders -------------------------------------------------------------------------------------------
    def _order_insert(self) -> Write:
        r = self.rng
        customer = self._customer_key() or (r.choice(TENANTS), self._uuid())
        ts = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=r.randint(0, 3600))
        key = (*customer, ts, self._timeuuid())
        self.orders.append(key)
        items = [{f"sku{r.randint(1, 50)}": r.randint(1, 5)} for _ in range(r.randint(1, 3))]
        return Write(
            "order_insert",
            (
                *key,
                r.choice(["new", "paid"]),
                Decimal(r.randint(1, 10**7)) / 100,
                r.randint(1, 10),
                items,
                {r.choice(["gift", "express", "bulk"])},
                [f"note {r.randint(1, 9)}"],
                {r.randint(1, 5): Decimal(r.randint(1, 500)) / 10},
            ),
        )

    def _order_update(self) -> Write | None:
        if not self.orders:
            return None
        key = self.rng.choice(self.orders)
        return Write("order_update", (self.rng.choice(["paid", "shipped", "returned"]), *key))

    def _order_delete(self) -> Write | None:
        if not self.orders:
            return None
        key = self.rng.choice(self.orders)
        self.orders.remove(key)
        return Write("order_delete", key)

    def _order_partition_delete(self) -> Write | None:
        if not self.orders:
            return None
        tenant, customer_id, _, _ = self.rng.choice(self.orders)
        return Write("order_partition_delete", (tenant, customer_id))

    def _order_range_delete(self) -> Write | None:
        if not self.orders:
            return None
        tenant, customer_id, ts, _ = self.rng.choice(self.orders)
        return Write(
            "order_range_delete", (tenant, customer_id, ts - timedelta(minutes=5), ts + timedelta(minutes=5))
        )

    # -- readings -----------------------------------------------------------------------------------------
    def _reading_ttl_insert(self) -> Write:
        r = self.rng
        return Write(
            "reading_ttl_insert",
            (
                self._uuid(),
                date.today(),
                r.randint(0, 10**6),
                r.choice(["temp", "rh"]),
                r.uniform(-40, 40),
                r.randbytes(8),
                {r.randint(0, 7)},
                r.randint(30, 600),
            ),
        )


@dataclass
class GeneratorReport:
    planned: Counter[str]
    failed: int
    elapsed_s: float

    @property
    def written(self) -> int:
        return sum(self.planned.values()) - self.failed


def run(
    session: Any, rate: float, seconds: float, seed: int = 0, max_in_flight: int = 256
) -> GeneratorReport:
    """Execute the planned mix on ``session`` at ``rate`` writes/s for ``seconds``."""
    prepared = {name: session.prepare(cql) for name, cql in STATEMENTS.items()}
    gate = Semaphore(max_in_flight)
    failures: list[BaseException] = []
    planned: Counter[str] = Counter()

    def release(_: object) -> None:
        gate.release()

    def failed(error: BaseException) -> None:
        failures.append(error)
        gate.release()

    start = time.monotonic()
    total = int(rate * seconds)
    for _, write in zip(paced(total, rate), Planner(seed=seed).writes(), strict=False):
        gate.acquire()
        future = session.execute_async(prepared[write.statement], write.params)
        future.add_callbacks(release, failed)
        planned[write.statement] += 1
    for _ in range(max_in_flight):
        gate.acquire()
    return GeneratorReport(planned=planned, failed=len(failures), elapsed_s=time.monotonic() - start)

"""In-memory stand-ins for the applier's ports (:mod:`app.sink.ports`): a transaction rolls back every fake's
state on error, and the ledger fences a stale generation like ``_cdc_checkpoints`` does."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from app.sink.checkpoints import Claim, Fenced
from app.sink.registry import TableEntry
from models.batch import TP, DeadLetter
from models.convergence import PartitionTombstones, ReadBack, RowState
from models.errors import UnknownTable
from models.merge_plan import Needs, Plan
from models.mutations import Key
from models.table_schema import TableSchema


@dataclass
class MemoryStore:
    rows: dict[Key, RowState] = field(default_factory=dict)
    tombstones: dict[Key, PartitionTombstones] = field(default_factory=dict)
    fail_on: Key | None = None
    """Writing this key raises a bug-like error (to exercise a bisecting commit)."""
    failure: Callable[[Key], BaseException] | None = field(default=None, repr=False)
    """What writing ``fail_on`` raises instead (every write, if ``fail_on`` is None)."""
    on_write: Callable[[], None] | None = field(default=None, repr=False)
    """Called inside every write: what another thread does while a batch runs (revoke, claim). A plain function
    (``deepcopy`` keeps functions as they are when a transaction snapshots the state)."""

    def load(self, conn: Any, needs: Needs) -> tuple[dict[Key, RowState], dict[Key, PartitionTombstones]]:
        rows = {k: r for k, r in self.rows.items() if k in needs.row_keys or k[:1] in needs.full_partitions}
        return rows, {p: t for p, t in self.tombstones.items() if p in needs.partitions}

    def write(self, conn: Any, plan: Plan, now_us: int) -> None:
        if self.on_write is not None:
            self.on_write()
        if self.failure is not None and (self.fail_on is None or self.fail_on in plan.rows):
            raise self.failure(self.fail_on or next(iter(plan.rows), ()))
        if self.fail_on is not None and self.fail_on in plan.rows:
            raise KeyError(f"bug writing {self.fail_on}")
        self.rows.update(plan.rows)
        for t in plan.tombstones:
            self.tombstones[t.partition] = self.tombstones.get(t.partition, PartitionTombstones()).add(t)

    def expired(self, conn: Any, now_us: int, limit: int) -> dict[Key, RowState]:
        due = {k: r for k, r in self.rows.items() if (r.next_expiry(0) or now_us + 1) <= now_us}
        return dict(list(due.items())[:limit])

    def purge(self, conn: Any, grace_s: int) -> int:
        return 0


@dataclass
class MemoryLedger:
    generations: dict[TP, int] = field(default_factory=dict)
    offsets: dict[TP, int] = field(default_factory=dict)
    events: dict[TP, int] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    locked: list[list[int]] = field(default_factory=list)

    def claim(self, conn: Any, group_id: str, partitions: Iterable[TP]) -> dict[TP, Claim]:
        claims = {}
        for tp in partitions:
            self.generations[tp] = self.generations.get(tp, 0) + 1
            claims[tp] = Claim(tp[0], tp[1], self.offsets.get(tp), self.generations[tp])
        return claims

    def advance(
        self,
        conn: Any,
        group_id: str,
        offsets: Mapping[TP, int],
        generations: Mapping[TP, int],
        events: Mapping[TP, int],
    ) -> None:
        stale = [tp for tp in offsets if self.generations.get(tp) != generations[tp]]
        if stale:
            raise Fenced(f"{stale} owned by another worker generation", stale)
        for tp, offset in offsets.items():
            self.offsets[tp] = offset
            self.events[tp] = self.events.get(tp, 0) + events.get(tp, 0)

    def lock_partitions(self, conn: Any, keys: Sequence[int]) -> None:
        self.locked.append(list(keys))

    def record_dead_letters(self, conn: Any, letters: Sequence[DeadLetter]) -> list[int]:
        self.dead_letters.extend(letters)
        return list(range(len(self.dead_letters) - len(letters), len(self.dead_letters)))


@dataclass
class MemoryReader:
    values: dict[Key, dict[str, ReadBack]] = field(default_factory=dict)
    calls: list[list[Key]] = field(default_factory=list)

    def read(
        self, schema: TableSchema, keys: Sequence[Key], columns: Sequence[str] | None = None
    ) -> dict[Key, dict[str, ReadBack]]:
        self.calls.append(list(keys))
        hints = sorted(schema.hint_columns if columns is None else columns)
        return {k: self.values.get(k, {c: ReadBack(None, None) for c in hints}) for k in keys}


@dataclass
class MemoryRegistry:
    entries: dict[tuple[str, str], TableEntry] = field(default_factory=dict)

    def resolve(self, keyspace: str, table: str) -> TableEntry:
        try:
            return self.entries[(keyspace, table)]
        except KeyError:
            raise UnknownTable(f"{keyspace}.{table} does not exist") from None

    def refresh(self, keyspace: str, table: str, types: bool = False) -> TableEntry:
        return self.resolve(keyspace, table)

    def current(self, keyspace: str, table: str) -> TableEntry:
        return self.resolve(keyspace, table)

    held: dict[tuple[str, str], str] = field(default_factory=dict)
    """Quarantined tables (their records wait)."""

    def quarantined(self) -> dict[tuple[str, str], str]:
        return dict(self.held)


class MemoryConnection:
    def __init__(self, world: list[Any]) -> None:
        self.world = world

    @contextmanager
    def transaction(self) -> Iterator[None]:
        saved = [copy.deepcopy(vars(obj)) for obj in self.world]
        try:
            yield
        except BaseException:
            for obj, state in zip(self.world, saved, strict=True):
                vars(obj).update(state)
            raise


@dataclass
class MemoryPool:
    world: list[Any]
    """Every fake whose state a transaction covers."""

    @contextmanager
    def connection(self) -> Iterator[Any]:
        yield MemoryConnection(self.world)

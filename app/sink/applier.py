"""Apply one consumed batch to PostgreSQL in ONE transaction: rows, dead letters and Kafka offsets together.

Synchronous on purpose (psycopg and cassandra-driver calls); the agent runs it in a worker thread.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.trace import Span
from psycopg import Connection

from app.clock import now_us
from app.dlq.sealing import Sealer, SealError, is_sealed
from app.sink.breaker import DeadLetterBreaker
from app.sink.checkpoints import Claim, Fenced
from app.sink.failures import classify, dead_letter_error
from app.sink.ledger import PostgresLedger
from app.sink.ports import CollectionReader, ConnectionSource, Ledger, TableResolver
from app.sink.registry import TableEntry, TableQuarantined
from app.sink.stages import StageObserver, ignore, stage_span, timed
from models.batch import TP, DeadLetter, Outcome, Record, TablePath, contiguous_ends
from models.convergence import EMPTY_ROW, PartitionTombstones, RowState, apply_readback
from models.debezium import Envelope, parse_json, to_mutation
from models.errors import (
    PermanentEventError,
    SnapshotEvent,
    TimestampOutOfRange,
    TopicMismatch,
    UnknownColumn,
    ValueMappingError,
)
from models.merge_plan import Needs, Plan, needs, plan
from models.mutations import Key, Mutation, RowDelete, RowWrite
from models.partition_locks import lock_order
from models.table_schema import TableSchema
from models.transforms import NO_TRANSFORMS, TransformPlan

__all__ = ["Applier", "DeadLetter", "Outcome", "Prepared", "Record", "TableWork", "apply_table"]


@dataclass(frozen=True)
class TableWork:
    """One table's share of a batch, ready to apply: its mutations as decoded, the same without their
    collection hints (what the merge sees), and the state they need loaded."""

    entry: TableEntry
    mutations: list[Mutation]
    stripped: list[Mutation]
    needs: Needs
    records: tuple[Record, ...] = ()
    """The record of each mutation (same order), for dead-lettering one that fails alone."""

    def halves(self) -> tuple[TableWork, TableWork]:
        """The first and the second half of this work (for bisecting a failure down to one record)."""
        mid = len(self.mutations) // 2
        first, second = self.mutations[:mid], self.mutations[mid:]
        return (
            table_work(self.entry, first, self.records[:mid]),
            table_work(self.entry, second, self.records[mid:]),
        )


def table_work(entry: TableEntry, mutations: Sequence[Mutation], records: Sequence[Record] = ()) -> TableWork:
    hints = entry.schema.hint_columns
    stripped = [_strip_hints(m, hints) for m in mutations] if hints else list(mutations)
    return TableWork(entry, list(mutations), stripped, needs(entry.schema, stripped), tuple(records))


@dataclass(frozen=True)
class Prepared:
    """A batch decoded and checked against the claims, not yet applied (:meth:`Applier.prepare`): the CPU
    half of a batch, done while the previous batch is in PostgreSQL."""

    records: Sequence[Record]
    claims: dict[TP, Claim]
    """The claims the batch was checked against (a snapshot, with the previous batch's offsets)."""
    outcome: Outcome
    """Ownership, gaps, skips and next offsets; :meth:`Applier.commit` adds what applying did."""
    tables: dict[TablePath, TableWork]
    dead: list[DeadLetter]
    lock_keys: list[int]
    """Every Cassandra partition the batch touches (all tables), ascending."""


def expecting(claims: Mapping[TP, Claim], previous: Prepared | None) -> dict[TP, Claim]:
    """``claims`` as they will be once ``previous`` (prepared, maybe still committing) has committed: its
    next offsets, for the partitions still held under the same generation (pure)."""
    result = dict(claims)
    if previous is None:
        return result
    for tp, offset in previous.outcome.next_offsets.items():
        claim, before = result.get(tp), previous.claims.get(tp)
        if claim is None or before is None or claim.generation != before.generation:
            continue
        if claim.next_offset is None or claim.next_offset < offset:
            result[tp] = replace(claim, next_offset=offset)
    return result


class Applier:
    def __init__(
        self,
        pool: ConnectionSource,
        registry: TableResolver,
        reader: CollectionReader,
        group_id: str,
        decode: Callable[[bytes | None, bytes | None], Envelope | None] = parse_json,
        ledger: Ledger | None = None,
        observe: StageObserver = ignore,
        topic_prefix: str | None = None,
        max_clock_skew_s: float | None = None,
        breaker: DeadLetterBreaker | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.sealer = sealer
        """With transforms configured: dead letters' values and messages are sealed (:mod:`app.dlq.sealing`)."""
        self.topic_prefix = topic_prefix
        """When set, an event must name the table of its topic ``<prefix>.<keyspace>.<table>``."""
        self.max_skew_us = None if max_clock_skew_s is None else int(max_clock_skew_s * 1_000_000)
        """How far in the future an event's write time may lie (None: no limit)."""
        self.breaker = breaker or DeadLetterBreaker()
        self.observe = observe
        """Receives each batch stage's wall time (:mod:`app.sink.stages`)."""
        self.decode = decode
        """Record bytes -> envelope; raises :class:`PermanentEventError` subclasses for bad input."""
        self.pool = pool
        self.registry = registry
        self.reader = reader
        self.group_id = group_id
        self.ledger: Ledger = ledger or PostgresLedger()
        self.claims: dict[TP, Claim] = {}
        """The partitions this worker owns (from :meth:`claim`), with their generation and next offset."""
        self._lock = threading.Lock()
        """Guards ``claims``: the agent's revoke/assign callbacks run while a batch runs in a worker thread."""

    # -- ownership ----------------------------------------------------------------------------------------
    def claim(self, partitions: Iterable[TP], starts: Mapping[TP, int] | None = None) -> dict[TP, Claim]:
        """Claim partitions (new generation) and return their stored offsets; commits at once. The agent calls
        it on assignment: a batch applies only the records of partitions claimed here.

        ``starts``: where a partition without a checkpoint starts (its earliest offset). Given here, a batch
        running meanwhile never sees such a claim without an offset (setting it afterwards raced the batch:
        a batch applied under the bare claim, then the late start moved its offset back)."""
        with self.pool.connection() as conn:
            claims = self.ledger.claim(conn, self.group_id, partitions)
        starts = starts or {}
        with self._lock:
            for tp, claim in claims.items():
                start = starts.get(tp) if claim.next_offset is None else None
                self.claims[tp] = claim if start is None else replace(claim, next_offset=start)
        return claims

    def release(self, partitions: Iterable[TP]) -> None:
        """Give partitions up (revoked); safe while a batch runs in another thread."""
        with self._lock:
            for tp in partitions:
                self.claims.pop(tp, None)

    def expect(self, tp: TP, offset: int) -> None:
        """Where a partition without a checkpoint starts (its earliest offset), or past a retention gap or a
        hole in the log. Only forward: an offset a batch has committed meanwhile is never moved back."""
        with self._lock:
            claim = self.claims.get(tp)
            if claim is not None and (claim.next_offset is None or claim.next_offset < offset):
                self.claims[tp] = replace(claim, next_offset=offset)

    def next_offsets(self) -> dict[TP, int]:
        """Where applying resumes, per claimed partition whose start is known."""
        with self._lock:
            return {tp: c.next_offset for tp, c in self.claims.items() if c.next_offset is not None}

    def _snapshot(self) -> dict[TP, Claim]:
        """The claims a batch works with from its start to its commit (a concurrent release cannot pull them
        away mid-batch; a concurrent claim by another worker fences the commit)."""
        with self._lock:
            return dict(self.claims)

    def _committed(self, claims: dict[TP, Claim], offsets: Mapping[TP, int]) -> None:
        """Move the batch's and (if still the same claim) the worker's offsets after a commit."""
        with self._lock:
            for tp, offset in offsets.items():
                claims[tp] = replace(claims[tp], next_offset=offset)
                current = self.claims.get(tp)
                if current is not None and current.generation == claims[tp].generation:
                    self.claims[tp] = claims[tp]

    def _drop_stale(self, claims: Mapping[TP, Claim], fenced: Fenced) -> None:
        """After :class:`Fenced`: forget the claims another worker has replaced (unless re-claimed since)."""
        stale = fenced.partitions or claims.keys()
        with self._lock:
            for tp in stale:
                current = self.claims.get(tp)
                if tp in claims and current is not None and current.generation == claims[tp].generation:
                    del self.claims[tp]

    # -- the batch ----------------------------------------------------------------------------------------
    def apply(self, records: Sequence[Record]) -> Outcome:
        """Apply ``records`` of the partitions this worker has claimed (others: ``Outcome.not_owned``); raises
        transient errors (retry the same batch) and :class:`Fenced` (the stale claims are dropped)."""
        return self.commit(self.prepare(records))

    def prepare(self, records: Sequence[Record], after: Prepared | None = None) -> Prepared:
        """The CPU half of a batch, no transaction: ownership, gaps, duplicates, decoding, lock keys.
        ``after``: the batch before this one, if it may still be committing (its offsets count as stored)."""
        with timed(self.observe, "decode"):
            return self._prepare(records, expecting(self._snapshot(), after))

    def _prepare(self, records: Sequence[Record], claims: dict[TP, Claim]) -> Prepared:
        outcome = Outcome()
        held = self.registry.quarantined()
        owned = [
            r for r in records if self._is_owned(r, claims, outcome) and not self._is_held(r, held, outcome)
        ]
        owned = self._without_gaps(owned, claims, outcome)
        seen: set[tuple[str, int, int]] = set()
        fresh = [r for r in owned if self._is_new(r, claims, outcome, seen)]
        if not outcome.next_offsets:
            return Prepared(records, claims, outcome, {}, [], [])
        decoded, dead = self._decode(fresh, outcome)
        tables, keys = self._work(decoded)
        return Prepared(records, claims, outcome, tables, dead, keys)

    def _work(
        self, decoded: Mapping[TablePath, list[tuple[Record, Mutation]]]
    ) -> tuple[dict[TablePath, TableWork], list[int]]:
        """Each table's work, and the partition lock keys of them all (ascending)."""
        tables = {
            path: table_work(self.registry.resolve(*path), [m for _, m in items], [r for r, _ in items])
            for path, items in decoded.items()
        }
        keys: set[int] = set()
        for (keyspace, table), work in tables.items():
            keys.update(lock_order(keyspace, table, work.needs.partitions))
        return tables, sorted(keys)

    def _transaction(self, conn: Any, prepared: Prepared, outcome: Outcome, bisect: bool) -> None:
        """:meth:`_commit_in` in one transaction; the COMMIT itself (the block's exit) is the stage
        ``commit``, timed and traced by hand."""
        commit_span: Span | None = None
        try:
            with conn.transaction():
                self._commit_in(conn, prepared, outcome, bisect)
                committing = time.perf_counter()
                commit_span = stage_span("commit")
            self.observe("commit", time.perf_counter() - committing)
        finally:
            if commit_span is not None:
                commit_span.end()

    def commit(self, prepared: Prepared, bisect: bool = False) -> Outcome:
        """The PostgreSQL half, in one transaction: lock, load, merge, write, dead letters and offsets.
        Retrying it with the same ``prepared`` after a failure is safe: only a commit that succeeded changes
        anything of ``prepared`` (its claims' offsets).

        ``bisect``: after a failure of one record's kind (:mod:`app.sink.failures`), apply each table's work
        under savepoints, halving a failing part down to the records that fail alone; those are dead-lettered
        in the same transaction, unless the dead-letter-rate breaker opens (then nothing commits)."""
        outcome = Outcome()
        outcome.merge(prepared.outcome)
        if not outcome.next_offsets:
            return outcome  # nothing of ours to commit
        claims = prepared.claims
        try:
            with self.pool.connection() as conn:
                self._transaction(conn, prepared, outcome, bisect)
        except Fenced as fenced:
            self._drop_stale(claims, fenced)
            raise
        self._committed(claims, outcome.next_offsets)
        self.breaker.committed(sum(outcome.consumed.values()), len(outcome.dead_letters))
        return outcome

    def _commit_in(self, conn: Connection[Any], prepared: Prepared, outcome: Outcome, bisect: bool) -> None:
        observe = self.observe
        with timed(observe, "lock"):
            self.ledger.lock_partitions(conn, prepared.lock_keys)
        now = now_us()
        dead = list(prepared.dead)
        for path, work in prepared.tables.items():
            if bisect:
                changed, applied, failed = self._bisecting(conn, work, now)
                dead.extend(self._dead_letter(record, error) for record, error in failed)
            else:
                changed, applied = apply_work(conn, work, now, self.reader, observe), work.mutations
            outcome.rows_changed += changed
            for mutation in applied:
                outcome.applied[(path, type(mutation).__name__)] += 1
        self.breaker.check(sum(outcome.consumed.values()), dead)
        with timed(observe, "ledger"):
            outcome.dead_letters.extend(dead)
            outcome.dlq_ids = self.ledger.record_dead_letters(conn, dead)
            self.ledger.advance(
                conn,
                self.group_id,
                outcome.next_offsets,
                {tp: prepared.claims[tp].generation for tp in outcome.next_offsets},
                outcome.consumed,
            )

    def _bisecting(
        self, conn: Connection[Any], work: TableWork, now: int
    ) -> tuple[int, list[Mutation], list[tuple[Record, Exception]]]:
        """Apply ``work`` under a savepoint; on a failure of one record's kind, split it in halves and apply
        each the same way. Returns rows changed, the mutations applied, and the records that failed alone.
        Failures that pause the stream (transient, systemic) are raised: nothing of the batch commits.
        The merge is a lattice join, so applying the halves one after the other gives the same state."""
        try:
            with conn.transaction():
                return apply_work(conn, work, now, self.reader, self.observe), work.mutations, []
        except Exception as error:
            if classify(error).pauses or not work.records:
                raise
            if len(work.mutations) == 1:
                return 0, [], [(work.records[0], error)]
        changed = 0
        applied: list[Mutation] = []
        failed: list[tuple[Record, Exception]] = []
        for half in work.halves():
            c, a, f = self._bisecting(conn, half, now)
            changed, applied, failed = changed + c, applied + a, failed + f
        return changed, applied, failed

    def replay(self, conn: Connection[Any], records: Sequence[Record]) -> list[DeadLetter]:
        """Apply dead letters again through the stream's path (decode, map, merge under Cassandra's rules, the
        same partition locks), inside the caller's transaction, without touching offsets: an old event cannot
        overwrite newer data and a second replay changes nothing (the merge is a lattice join). Returns the
        records that fail again (typed); the others took effect. Failures that pause (a dependency down, a
        quarantined table) are raised, and nothing of the chunk commits."""
        decoded, dead = self._decode(self._opened(records), Outcome())
        held = self.registry.quarantined()
        for path in decoded:
            if path in held:
                raise TableQuarantined(
                    f"{'.'.join(path)} is quarantined ({held[path]}): replay it once resolved"
                )
        tables, keys = self._work(decoded)
        self.ledger.lock_partitions(conn, keys)
        now = now_us()
        for work in tables.values():
            _, _, failed = self._bisecting(conn, work, now)
            dead.extend(self._dead_letter(record, error) for record, error in failed)
        return dead

    def repair(
        self, conn: Connection[Any], path: TablePath, mutations: Sequence[Mutation], adjust: LoadedAdjuster
    ) -> int:
        """Apply mutations built from Cassandra's current rows (reconciliation's repair) through the stream's
        path, under the same partition locks, inside the caller's transaction; ``adjust`` drops loaded cells
        that contradict Cassandra at the same write time. Rows changed. ``mutations`` hold transformed
        values (:meth:`transformed`)."""
        return self.apply_rows(conn, path, mutations, adjust)

    def apply_rows(
        self,
        conn: Connection[Any],
        path: TablePath,
        mutations: Sequence[Mutation],
        adjust: LoadedAdjuster | None = None,
        reader: CollectionReader | None = None,
    ) -> int:
        """Mutations built from rows read in Cassandra (repair, backfill) through the stream's merge and store,
        under the same partition locks, inside the caller's transaction; rows changed. ``reader``: where
        collections are read back (default: Cassandra, as for the stream)."""
        work = table_work(self.registry.resolve(*path), mutations)
        self.ledger.lock_partitions(conn, lock_order(*path, work.needs.partitions))
        return apply_work(conn, work, now_us(), reader or self.reader, self.observe, adjust)

    def transformed(self, path: TablePath, mutations: Sequence[Mutation]) -> list[Mutation]:
        """``mutations`` built from Cassandra's values, with the table's transform plan applied (what the
        stream's decoding does to each event)."""
        plan = self.registry.resolve(*path).transforms
        return [plan.mutation(m) for m in mutations]

    def sweep(self, tables: Iterable[TablePath], grace_s: int, limit: int = 5000) -> int:
        """Apply TTL expiry (no event announces it) and forget tombstones past the grace period."""
        changed = 0
        now = now_us()
        entries = []
        for path in tables:
            if path in self.registry.quarantined():
                continue
            try:
                entries.append(self.registry.resolve(*path))
            except PermanentEventError:
                continue  # the table is gone from Cassandra
        for entry in entries:
            with self.pool.connection() as conn, conn.transaction():
                rows = self._sweep_table(conn, entry, now, limit)
                entry.store.purge(conn, grace_s)
            changed += len(rows)
        return changed

    def _sweep_table(self, conn: Connection[Any], entry: TableEntry, now: int, limit: int) -> dict[Key, Any]:
        """Rewrite the rows whose TTL has passed, under the same partition locks as batches: find them, lock
        their partitions, then re-read their state (a batch may have committed in between)."""
        due = entry.store.expired(conn, now, limit)
        if not due:
            return due
        schema = entry.schema
        self.ledger.lock_partitions(
            conn, lock_order(schema.keyspace, schema.table, (schema.partition_of(k) for k in due))
        )
        rows, _ = entry.store.load(conn, Needs(frozenset(due), frozenset(), frozenset()))
        entry.store.write(conn, Plan(rows=rows), now)
        return rows

    def _is_held(self, record: Record, held: Mapping[TablePath, str], outcome: Outcome) -> bool:
        """Is the record's table quarantined (named by its topic, ``<prefix>.<keyspace>.<table>``)?"""
        if not held or self.topic_prefix is None:
            return False
        keyspace, _, table = record.topic.removeprefix(f"{self.topic_prefix}.").partition(".")
        if (keyspace, table) not in held:
            return False
        outcome.held[(record.topic, record.partition)] += 1
        return True

    def _is_owned(self, record: Record, claims: Mapping[TP, Claim], outcome: Outcome) -> bool:
        tp = (record.topic, record.partition)
        if tp in claims:
            return True
        outcome.not_owned[tp] += 1
        return False

    def _without_gaps(
        self, records: Sequence[Record], claims: Mapping[TP, Claim], outcome: Outcome
    ) -> list[Record]:
        """Keep each partition's records up to the first offset the batch lacks (Kafka's position is only a
        hint): a partition whose first record lies past its stored offset applies nothing, one with a hole
        applies what precedes it; either is a gap to seek back over (:func:`models.batch.contiguous_ends`)."""
        cuts = contiguous_ends(records, {tp: claim.next_offset for tp, claim in claims.items()})
        if not cuts:
            return list(records)
        for tp, (missing, held) in cuts.items():
            outcome.gaps[tp] = missing
            outcome.gap_starts[tp] = held
        return [
            r
            for r in records
            if (r.topic, r.partition) not in cuts or r.offset < cuts[(r.topic, r.partition)][0]
        ]

    def _is_new(
        self, record: Record, claims: Mapping[TP, Claim], outcome: Outcome, seen: set[tuple[str, int, int]]
    ) -> bool:
        """Is ``record`` at or past the stored offset, and not already in this batch? A batch can hold an
        offset twice (records buffered before a rebalance's or gap's seek, then fetched again): the copy is
        skipped, not counted again. Order within the batch is not assumed."""
        tp = (record.topic, record.partition)
        stored = claims[tp].next_offset
        outcome.next_offsets[tp] = max(outcome.next_offsets.get(tp, 0), record.offset + 1, stored or 0)
        copy = (record.topic, record.partition, record.offset)
        if (stored is not None and record.offset < stored) or copy in seen:
            outcome.skipped += 1
            return False
        seen.add(copy)
        outcome.consumed[tp] += 1
        return True

    # -- decoding -----------------------------------------------------------------------------------------
    def _decode(
        self, records: Sequence[Record], outcome: Outcome
    ) -> tuple[dict[TablePath, list[tuple[Record, Mutation]]], list[DeadLetter]]:
        decoded: dict[TablePath, list[tuple[Record, Mutation]]] = defaultdict(list)
        dead: list[DeadLetter] = []
        for record in records:
            try:
                env = self.decode(record.key, record.value)
                if env is None:
                    outcome.skipped += 1
                    continue
                mutation = self._mutation(record, env)
            except Exception as error:
                if classify(error).pauses:
                    raise  # the whole batch waits (registry or Cassandra down, ...)
                dead.append(self._dead_letter(record, error))
                continue
            path = (env.keyspace, env.table)
            decoded[path].append((record, mutation))
            outcome.table_of[(record.topic, record.partition)] = path
            outcome.last_ts_us[path] = max(outcome.last_ts_us.get(path, 0), mutation.ts)
        return decoded, dead

    def _dead_letter(self, record: Record, error: BaseException) -> DeadLetter:
        typed = dead_letter_error(error)
        sealer = self.sealer
        if sealer is None:
            return DeadLetter(record, typed.reason, str(typed))
        return DeadLetter(
            replace(record, value=sealer.seal(record.value)), typed.reason, sealer.seal_text(str(typed))
        )

    def _opened(self, records: Sequence[Record]) -> Sequence[Record]:
        """Dead letters to replay, their sealed values opened (without the key: :class:`SealError`, the
        replay stops and the records stay)."""
        sealer = self.sealer
        if sealer is None:
            if any(is_sealed(r.value) for r in records):
                raise SealError(
                    "sealed dead letters: replaying them needs transform_hash_key (and the rules)"
                )
            return records
        return [r if not is_sealed(r.value) else replace(r, value=sealer.open(r.value)) for r in records]

    def _mutation(self, record: Record, env: Envelope) -> Mutation:
        """The typed mutation of one event, after the trust checks (its topic, its timestamp)."""
        prefix = self.topic_prefix
        if prefix is not None and record.topic != f"{prefix}.{env.keyspace}.{env.table}":
            raise TopicMismatch(
                f"the event names {env.keyspace}.{env.table} but came from topic {record.topic}"
            )
        if self.max_skew_us is not None and env.ts_us > now_us() + self.max_skew_us:
            raise TimestampOutOfRange(
                f"write time {env.ts_us} µs is more than {self.max_skew_us // 1_000_000} s in the future "
                "(it would shadow every later write)"
            )
        if env.snapshot:
            raise SnapshotEvent(
                "the Debezium agent's snapshot events carry the snapshot query's time (source.ts_us), not each "
                "cell's write time: applied, they could overwrite newer writes. Set the agent's "
                "snapshot.mode=never and mirror existing rows with cdc backfill"
            )
        path = (env.keyspace, env.table)
        entry = self.registry.resolve(*path)
        try:
            mutation = to_mutation(entry.schema, env)
        except UnknownColumn:
            entry = self.registry.refresh(*path)  # a column added: re-read the schema from Cassandra
            mutation = to_mutation(entry.schema, env)
        except ValueMappingError:
            current = self.registry.refresh(*path, types=True)  # e.g. a UDT field added
            if current is entry:
                raise
            entry, mutation = current, to_mutation(current.schema, env)
        return entry.transforms.mutation(mutation)


def apply_table(
    conn: Connection[Any],
    entry: TableEntry,
    mutations: Sequence[Mutation],
    now_us: int,
    reader: CollectionReader,
) -> int:
    """THE apply path for one table's share of a batch (what :meth:`Applier.commit` runs, through
    :func:`apply_work`), inside the caller's transaction; returns rows changed."""
    return apply_work(conn, table_work(entry, mutations), now_us, reader)


LoadedAdjuster = Callable[[dict[Key, RowState], dict[Key, PartitionTombstones]], dict[Key, RowState]]
"""Sees the loaded rows and partition tombstones before the merge and may change the rows (reconciliation's
repair: :func:`app.reconcile.repair.adjuster`; the backfill: :mod:`app.backfill.apply`)."""


def apply_work(
    conn: Connection[Any],
    work: TableWork,
    now_us: int,
    reader: CollectionReader,
    observe: StageObserver = ignore,
    adjust: LoadedAdjuster | None = None,
) -> int:
    """Load the touched state, plan the merge, read non-frozen collections back where needed, write."""
    entry = work.entry
    schema = entry.schema
    with timed(observe, "load"):
        rows, tombstones = entry.store.load(conn, work.needs)
    if adjust is not None:
        rows = adjust(rows, tombstones)
    transforms = entry.transforms
    with timed(observe, "plan"):
        result = plan(schema, work.stripped, rows, tombstones, transforms.opaque)
    if schema.hint_columns:
        with timed(observe, "readback"):
            _read_back(schema, work.mutations, result, rows, reader, transforms)
    if result.ties:
        with timed(observe, "readback"):
            _settle_ties(schema, result, rows, reader, transforms)
    with timed(observe, "write"):
        entry.store.write(conn, result, now_us)
    return len(result.rows)


def _read_back(
    schema: TableSchema,
    mutations: Sequence[Mutation],
    result: Plan,
    loaded: Mapping[Key, RowState],
    reader: CollectionReader,
    transforms: TransformPlan = NO_TRANSFORMS,
) -> None:
    """Replace planned non-frozen collections by what Cassandra holds, where the rules need it."""
    triggers = _readback_triggers(schema, mutations, result.rows, loaded)
    if not triggers:
        return
    reads = reader.read(schema, list(triggers))
    for key, (trigger_ts, expires_at) in triggers.items():
        base = result.rows.get(key, loaded.get(key, EMPTY_ROW))
        values = {
            c: replace(v, value=transforms.value(c, v.value), expires_at=expires_at)
            for c, v in reads[key].items()
        }
        result.rows[key] = apply_readback(base, values, trigger_ts)


def _settle_ties(
    schema: TableSchema,
    result: Plan,
    loaded: Mapping[Key, RowState],
    reader: CollectionReader,
    transforms: TransformPlan,
) -> None:
    """Equal write times, different transformed values: Cassandra's tie rule compares the original values,
    which the sink never holds, so the cells are read back; Cassandra's current value is its own choice (or
    newer). Only the tied cells of each row are replaced."""
    columns = sorted(set().union(*result.ties.values()))
    reads = reader.read(schema, list(result.ties), columns)
    for key, tied in result.ties.items():
        base = result.rows.get(key, loaded.get(key, EMPTY_ROW))
        values = {}
        for column in tied:
            read, cell = reads[key][column], base.cells.get(column)
            expires_at = (
                cell.expires_at if cell is not None and read.newest_ts == cell.ts else read.expires_at
            )
            values[column] = replace(read, value=transforms.value(column, read.value), expires_at=expires_at)
        trigger_ts = max((base.cells[c].ts for c in tied if c in base.cells), default=0)
        result.rows[key] = apply_readback(base, values, trigger_ts)


def _strip_hints(mutation: Mutation, hints: frozenset[str]) -> Mutation:
    if not isinstance(mutation, RowWrite) or not mutation.hint_columns:
        return mutation
    return replace(mutation, cells={k: v for k, v in mutation.cells.items() if k not in hints})


def _statement_expiry(write: RowWrite, hints: frozenset[str]) -> int | None:
    if write.marker_expires_at is not None:
        return write.marker_expires_at
    expiries = [c.expires_at for n, c in write.cells.items() if n not in hints and c.expires_at is not None]
    return max(expiries, default=None)


def _readback_triggers(
    schema: TableSchema,
    mutations: Sequence[Mutation],
    planned: Mapping[Key, Any],
    loaded: Mapping[Key, Any],
) -> dict[Key, tuple[int, int | None]]:
    """Rows whose non-frozen collections must be re-read from Cassandra (the event only hints at them):

    - rows whose statement wrote one;
    - rows where a stored collection survived a tombstone of this batch (the collection is newer than the
      tombstone, so some of its elements may be gone and others not). A collection the tombstone shadowed
      whole is gone in Cassandra too, and a change of other columns only leaves it as it is: no read."""
    hints = schema.hint_columns
    triggers: dict[Key, tuple[int, int | None]] = {}
    deleted_rows: set[Key] = set()
    deleted_partitions: set[Key] = set()
    for m in mutations:
        if isinstance(m, RowWrite):
            if m.hint_columns:
                ts, _ = triggers.get(m.key, (m.ts, None))
                triggers[m.key] = (max(ts, m.ts), _statement_expiry(m, hints))
        elif isinstance(m, RowDelete):
            deleted_rows.add(m.key)
        else:
            deleted_partitions.add(m.partition)
    for key, row in planned.items():
        before = loaded.get(key)
        if key in triggers or before is None:
            continue
        if key not in deleted_rows and schema.partition_of(key) not in deleted_partitions:
            continue
        if any(c in before.cells and c in row.cells for c in hints):
            triggers[key] = (max((c.ts for c in row.cells.values()), default=0), None)
    return triggers

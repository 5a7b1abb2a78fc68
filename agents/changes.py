"""The change agent: consumes every Debezium topic ``<prefix>.<keyspace>.<table>`` and applies it.

Thin wiring: raw bytes in (decoding happens in :mod:`models.debezium`), batches from the batching
consumer's buffer (:mod:`app.batching_consumer`), ``concurrency=1`` (Faust bug #606), the next batch decoded
while the previous one commits (:func:`run_batches`), offsets owned by PostgreSQL (claimed on assignment,
sought back over gaps), and no exception ever leaves the loop (:meth:`app.runtime.Runtime.prepare` and
``commit`` never raise).

Nothing happens at import: the worker's :class:`~app.runtime.Runtime` is built, and the change topics that
exist are found, in a start-up hook (:meth:`app.faust_app.CdcApp.on_startup`, before the consumer
subscribes); the runtime is closed at shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from functools import cache
from typing import Any, Protocol

import faust
import structlog
from aiokafka.errors import KafkaError
from faust.types import TP
from opentelemetry import trace

from app import capture, metrics, tracing
from app.faust_app import app
from app.health import health
from app.kafka_auth import client_kwargs
from app.runtime import Runtime, SendDeadLetter
from app.settings import get_settings
from app.sink.applier import Prepared
from app.sink.checkpoints import Claim
from app.topics import UNREACHABLE, keyspace_selected, list_topics, matching, placeholder_topic, topic_pattern
from models.batch import Outcome, Record, stalled
from tables import progress

log = structlog.get_logger("cdc.agent")


RESUBSCRIBE_PAUSE_S = 10.0
"""How long Faust waits to coalesce subscription changes before it resubscribes (its default: 45 s). With
2 s, tests/integration/test_discovery.py failed 3 runs of 4: the new partitions were assigned and claimed,
the consumer's position reached their end, yet none of their records reached the buffer (where Faust drops
them is not found). :func:`recover_stalled` now seeks such partitions back (5 of 5 passed at 2 s); 10 s
also failed once in CI before it."""


class Consumer(Protocol):
    """The part of Faust's consumer the hooks use (a fake in unit tests)."""

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]: ...

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]: ...

    async def seek(self, partition: TP, offset: int) -> None: ...

    async def position(self, tp: TP) -> int | None: ...

    def assignment(self) -> set[TP]: ...

    def pause_partitions(self, tps: Iterable[TP]) -> None: ...

    def resume_partitions(self, tps: Iterable[TP]) -> None: ...


class WorkerRuntime(Protocol):
    """The part of :class:`app.runtime.Runtime` the hooks use (a fake in unit tests)."""

    async def claim(
        self, partitions: Sequence[tuple[str, int]], starts: Mapping[tuple[str, int], int] | None = None
    ) -> dict[tuple[str, int], Claim]: ...

    def expect(self, tp: tuple[str, int], offset: int) -> None: ...

    def next_offsets(self) -> dict[tuple[str, int], int]: ...

    async def prepare(self, records: Sequence[Record], after: Prepared | None = None) -> Prepared | None: ...

    async def commit(self, records: Sequence[Record], prepared: Prepared | None) -> Outcome | None: ...

    async def publish_dead_letters(self, send: SendDeadLetter) -> int: ...


class Wiring:
    """What the hooks of one worker process share; filled at start-up, never at import."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.gaps: dict[tuple[str, int], tuple[int, int]] = {}
        """The last gap sought back over, per partition: (stored offset, first offset the batch held)."""
        self.held: dict[tuple[str, int], tuple[int, int]] = {}
        """Partitions paused because PostgreSQL's offset lies beyond the topic's end: (stored, end)."""
        self.first_seen: dict[tuple[str, str], float] = {}
        """When the capture check first listed each table with CDC on (monotonic seconds)."""
        self.parked: dict[tuple[str, int], tuple[str, str]] = {}
        """Partitions paused because their table is quarantined (-> the table)."""
        self.outbox: asyncio.Future[None] | None = None
        """The outbox round started after the last batch with dead letters (not awaited by the stream)."""
        self.assigned = False
        """The group has assigned this worker its partitions (for ``/ready``)."""
        self.stalled: dict[tuple[str, int], int] = {}
        """Partitions fetched past their next offset with nothing buffered at the last check (-> that offset)."""
        self.stopping = asyncio.Event()
        """Set on shutdown: the batch loop takes no new batch, finishes the one in flight and returns."""
        self.drained = asyncio.Event()
        """Set once the batch loop has returned (nothing of it in PostgreSQL any more)."""
        self.wake: Callable[[], None] | None = None
        """Wakes the batch loop's wait for records (the buffer's ``close``)."""
        self.lag_reported: set[tuple[str, int]] = set()
        """Partitions whose ``cdc_consumer_lag_events`` gauge this worker sets."""


wiring = Wiring()


def current_runtime() -> Runtime:
    if wiring.runtime is None:
        wiring.runtime = Runtime(get_settings())
    return wiring.runtime


def wanted(topic: str) -> bool:
    """A change topic of a replicated keyspace (all keyspaces unless ``cassandra.keyspaces`` names some)."""
    settings = get_settings()
    return keyspace_selected(topic, _pattern(settings.kafka.topic_prefix), settings.cassandra.keyspaces)


@cache
def _pattern(prefix: str) -> Any:
    return topic_pattern(prefix)


changes = app.topic(
    placeholder_topic(get_settings().kafka.topic_prefix), key_serializer="raw", value_serializer="raw"
)


@cache
def dead_letter_topic() -> faust.types.TopicT:
    settings = get_settings()
    return app.topic(
        settings.kafka.dlq_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
        retention=timedelta(days=settings.dlq.topic_retention_days),
    )


def ours(partitions: Iterable[TP]) -> list[tuple[str, int]]:
    return sorted((tp.topic, tp.partition) for tp in partitions if wanted(tp.topic))


# -- start-up and shutdown ----------------------------------------------------------------------------------
@app.on_startup
async def start_worker() -> None:
    """Build the runtime and subscribe to the change topics that exist (before the first subscription)."""
    current_runtime()
    app.batching_consumer.configure(batch_topic=wanted, capacity=4 * get_settings().sink.batch_size)
    # Faust's conductor coalesces subscription changes for 45 s before resubscribing, so a table created
    # while the worker runs would wait ~50 s; our only source of changes is the 5 s discovery timer.
    app.topics._resubscribe_sleep_lock_seconds = RESUBSCRIBE_PAUSE_S  # type: ignore[attr-defined]
    await discover_topics(resubscribe=False)


@app.on_stopping
async def finish_batches() -> None:
    """SIGTERM, before Faust stops its consumer and tables: the batch loop finishes its batch in flight."""
    await drain(get_settings().sink.shutdown_timeout_s)


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def close_runtime(sender: Any, *args: Any, signal: Any, **_: Any) -> None:
    """After the consumer stopped: the PostgreSQL pool and the Cassandra session close (Faust flushes and
    stops the Kafka producer afterwards)."""
    await drain(get_settings().sink.shutdown_timeout_s)  # at once when finish_batches ran
    if wiring.runtime is not None:
        await asyncio.to_thread(wiring.runtime.close)
        log.info("shutdown: PostgreSQL pool and Cassandra session closed")


async def drain(timeout_s: float) -> bool:
    """Stop the batch loop after its batch in flight; False when that took longer than ``timeout_s``."""
    wiring.stopping.set()
    if wiring.wake is not None:
        wiring.wake()
    if wiring.runtime is None or wiring.runtime.applier is None:
        return True  # never started: no batch
    started = time.monotonic()
    try:
        await asyncio.wait_for(wiring.drained.wait(), timeout_s)
    except TimeoutError:
        log.error(
            "shutdown: the batch in flight did not commit in time; its transaction rolls back",
            timeout_s=timeout_s,
        )
        return False
    log.info("shutdown: batch loop stopped, nothing in flight", seconds=round(time.monotonic() - started, 3))
    return True


# -- partitions ---------------------------------------------------------------------------------------------
@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def on_assigned(sender: Any, *args: Any, signal: Any, **_: Any) -> None:
    await claim_assigned(current_runtime(), app.consumer, ours(args[0]))
    wiring.assigned = True


async def claim_assigned(runtime: WorkerRuntime, consumer: Consumer, mine: Sequence[tuple[str, int]]) -> None:
    """Claim our partitions in PostgreSQL (new generation: fences off their previous owner).

    PostgreSQL's offsets decide where applying resumes: records before them are skipped, and a batch that
    starts after them makes the agent seek back (see :func:`resume_gaps`). A partition without a checkpoint
    starts at its earliest offset.
    """
    if not mine:
        return
    claims = await runtime.claim(mine, await starts_of(consumer, mine))
    log.info("partitions claimed", offsets={f"{t}:{p}": c.next_offset for (t, p), c in claims.items()})
    await hold_beyond_end(consumer, claims)


async def hold_beyond_end(
    consumer: Consumer,
    claims: Mapping[tuple[str, int], Claim],
    held: dict[tuple[str, int], tuple[int, int]] | None = None,
) -> list[tuple[str, int]]:
    """Pause the partitions whose stored offset lies beyond the topic's end offset (the topic was recreated,
    or its offsets reset): applying them would silently skip every record below the stored offset. Loud
    (error log, ``cdc_offset_beyond_end``, ``/health``) until an operator decides (``cdc offsets reset``);
    :func:`recheck_held` resumes them once the offsets fit. Returns the partitions still held."""
    held = wiring.held if held is None else held
    stored = {tp: c.next_offset for tp, c in claims.items() if c.next_offset is not None}
    ends = await consumer.highwaters(*(TP(*tp) for tp in stored)) if stored else {}
    beyond = {tp: (o, ends[TP(*tp)]) for tp, o in stored.items() if TP(*tp) in ends and o > ends[TP(*tp)]}
    for (topic, partition), (offset, end) in beyond.items():
        log.error(
            "stored offset beyond the end of the topic: the topic was recreated or its offsets reset; "
            "partition paused, nothing skipped (decide with `cdc offsets reset`)",
            topic=topic,
            partition=partition,
            stored_offset=offset,
            end_offset=end,
        )
        metrics.offset_beyond_end.labels(topic, str(partition)).set(offset - end)
    if beyond:
        consumer.pause_partitions({TP(*tp) for tp in beyond})
    fine = [tp for tp in claims if tp not in beyond and tp in held]
    for topic, partition in fine:
        metrics.offset_beyond_end.labels(topic, str(partition)).set(0)
        held.pop((topic, partition))
    held.update(beyond)
    _report_held(held)
    return sorted(held)


def _report_held(held: Mapping[tuple[str, int], tuple[int, int]]) -> None:
    if held:
        names = ", ".join(f"{t}[{p}] stored {o} > end {e}" for (t, p), (o, e) in sorted(held.items()))
        health.mark("offsets", "down", f"paused, stored offset beyond the topic's end: {names}")
    elif "offsets" in health.components:
        health.mark("offsets", "up")


async def recheck_held(
    runtime: WorkerRuntime, consumer: Consumer, held: dict[tuple[str, int], tuple[int, int]] | None = None
) -> None:
    """Held partitions whose offset now fits (reset by an operator) are claimed again, sought to the stored
    offset and resumed; those no longer assigned are forgotten."""
    held = wiring.held if held is None else held
    assigned = consumer.assignment()
    for tp in [tp for tp in held if TP(*tp) not in assigned]:
        held.pop(tp)
    if not held:
        _report_held(held)
        return
    tps = sorted(held)
    starts = await starts_of(consumer, tps)
    claims = await runtime.claim(tps, starts)
    still = await hold_beyond_end(consumer, claims, held)
    ready = [tp for tp in tps if tp not in still]
    await seek_to_claims(consumer, claims, ready, starts)
    if ready:
        consumer.resume_partitions({TP(*tp) for tp in ready})  # a set: Faust iterates it twice
        log.info("partitions resumed at their stored offsets", partitions=[f"{t}:{p}" for t, p in ready])


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def on_revoked(sender: Any, *args: Any, signal: Any, **_: Any) -> None:
    revoked = ours(args[0])
    current_runtime().release(revoked)
    for tp in revoked:
        wiring.held.pop(tp, None)
        wiring.gaps.pop(tp, None)
        wiring.parked.pop(tp, None)
    app.batching_consumer.buffer.discard(set(revoked))


async def resume_gaps(
    runtime: WorkerRuntime,
    consumer: Consumer,
    gaps: dict[tuple[str, int], int],
    starts: Mapping[tuple[str, int], int] | None = None,
    seen: dict[tuple[str, int], tuple[int, int]] | None = None,
) -> None:
    """Seek partitions back to their stored offset. Past a retention gap, accept the loss loudly. The same
    gap met again right after seeking back over it (``starts``: the first offset each batch held; ``seen``:
    the last gap per partition) is a hole in the log, not missed records: transaction markers and
    compaction leave offsets no record has, so the first record at or after the stored offset is accepted."""
    seen = wiring.gaps if seen is None else seen
    starts = starts or {}
    earliest = await consumer.earliest_offsets(*(TP(t, p) for t, p in gaps))
    for (topic, partition), stored in gaps.items():
        tp = (topic, partition)
        first = starts.get(tp)
        if first is not None and seen.get(tp) == (stored, first):
            log.info(
                "offset hole (transaction markers or compaction) passed",
                topic=topic,
                partition=partition,
                missing_from=stored,
                next_record=first,
            )
            del seen[tp]
            runtime.expect(tp, first)
            await consumer.seek(TP(topic, partition), first)
            continue
        if first is not None:
            seen[tp] = (stored, first)
        first_available = earliest.get(TP(topic, partition), stored)
        if first_available > stored:
            log.error(
                "events deleted by Kafka retention before they were applied",
                topic=topic,
                partition=partition,
                lost_from=stored,
                lost_to=first_available - 1,
            )
            runtime.expect((topic, partition), first_available)
            continue
        log.info(
            "records missing from the fetch: seeking back to the stored offset",
            topic=topic,
            partition=partition,
            stored_offset=stored,
            next_fetched=first,
        )
        await consumer.seek(TP(topic, partition), stored)


async def claim_and_seek(
    runtime: WorkerRuntime, consumer: Consumer, partitions: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], Claim]:
    """Claim ``partitions`` again and seek each to where PostgreSQL says applying resumes (its earliest
    offset if nothing was applied yet); returns the claims."""
    starts = await starts_of(consumer, partitions)
    claims = await runtime.claim(partitions, starts)
    await seek_to_claims(consumer, claims, partitions, starts)
    return claims


async def starts_of(consumer: Consumer, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Each partition's earliest offset: where one without a checkpoint starts."""
    if not partitions:
        return {}
    found = await consumer.earliest_offsets(*(TP(*tp) for tp in partitions))
    return {(tp.topic, tp.partition): offset for tp, offset in found.items()}


async def seek_to_claims(
    consumer: Consumer,
    claims: Mapping[tuple[str, int], Claim],
    partitions: Sequence[tuple[str, int]],
    starts: Mapping[tuple[str, int], int],
) -> None:
    """Seek each partition to its stored offset, or to its start (``starts``, the claim's) without one."""
    for tp in partitions:
        offset = claims[tp].next_offset
        await consumer.seek(TP(*tp), starts[tp] if offset is None else offset)


async def reclaim_assigned(
    runtime: WorkerRuntime, consumer: Consumer, unclaimed: Sequence[tuple[str, int]]
) -> None:
    """Records of partitions that Kafka assigns to this worker but that were not claimed when their batch ran
    (the batch raced the assignment hook) must not be lost: claim them now and seek back to where PostgreSQL
    says applying resumes. Partitions no longer assigned (revoked, or fenced by their new owner) stay left."""
    assigned = consumer.assignment()
    mine = sorted(tp for tp in unclaimed if TP(*tp) in assigned)
    if not mine:
        return
    claims = await claim_and_seek(runtime, consumer, mine)
    log.info(
        "claimed assigned partitions a batch found unclaimed",
        offsets={f"{t}:{p}": o for (t, p), o in claims.items()},
    )


def table_of_topic(topic: str) -> tuple[str, str]:
    keyspace, table = topic.split(".")[-2:]
    return keyspace, table


def park_quarantined(
    consumer: Consumer,
    partitions: Sequence[tuple[str, int]],
    parked: dict[tuple[str, int], tuple[str, str]] | None = None,
) -> None:
    """Pause the partitions of quarantined tables: their records stay in Kafka (the applier held them,
    uncommitted) until :func:`release_quarantined`."""
    parked = wiring.parked if parked is None else parked
    new = [tp for tp in partitions if tp not in parked]
    for tp in new:
        parked[tp] = table_of_topic(tp[0])
    if new:
        consumer.pause_partitions({TP(*tp) for tp in new})
        log.warning("partitions of quarantined tables paused", partitions=[f"{t}:{p}" for t, p in new])


async def release_quarantined(
    runtime: WorkerRuntime,
    consumer: Consumer,
    quarantined: Mapping[tuple[str, str], str],
    parked: dict[tuple[str, int], tuple[str, str]] | None = None,
) -> list[tuple[str, int]]:
    """Resume the parked partitions whose table is no longer quarantined, from PostgreSQL's offset."""
    parked = wiring.parked if parked is None else parked
    assigned = consumer.assignment()
    for tp in [tp for tp in parked if TP(*tp) not in assigned]:
        del parked[tp]
    ready = sorted(tp for tp, path in parked.items() if path not in quarantined)
    if not ready:
        return []
    claims = await claim_and_seek(runtime, consumer, ready)
    for tp in ready:
        del parked[tp]
    consumer.resume_partitions({TP(*tp) for tp in ready})  # a set: Faust iterates it twice
    log.info(
        "quarantine lifted: partitions resumed",
        offsets={f"{t}:{p}": claims[(t, p)].next_offset for t, p in ready},
    )
    return ready


# -- the stream ---------------------------------------------------------------------------------------------
async def send_dead_letter(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> Awaitable[Any]:
    """Hand one DLQ record to the producer; the result resolves when the broker acknowledges it."""
    return await dead_letter_topic().send(key=key, value=value, headers=headers)


async def handle_batch(
    runtime: WorkerRuntime,
    consumer: Consumer,
    records: Sequence[Record],
    prepared: Prepared | None,
    remember: Callable[[Outcome], None] = progress.record,
) -> Outcome | None:
    """Commit one prepared batch, then seek back over gaps and do the post-commit bookkeeping; never raises."""
    outcome = await runtime.commit(records, prepared)
    if outcome is None:
        return None
    if outcome.gaps:
        await resume_gaps(runtime, consumer, outcome.gaps, outcome.gap_starts)
    if outcome.not_owned:
        await reclaim_assigned(runtime, consumer, list(outcome.not_owned))
    if outcome.held:
        park_quarantined(consumer, list(outcome.held))
    try:
        remember(outcome)
    except Exception:
        log.exception("post-commit bookkeeping failed")
    if outcome.dead_letters:
        # Published in the background: the next batch does not wait for the broker's acknowledgements.
        wiring.outbox = asyncio.ensure_future(publish_dead_letters(runtime))
    return outcome


async def publish_dead_letters(runtime: WorkerRuntime) -> None:
    """One outbox round; a failure is logged (the outbox timer retries)."""
    try:
        await runtime.publish_dead_letters(send_dead_letter)
    except Exception:
        log.exception("publishing dead letters failed; the outbox timer retries")


@app.agent(changes, concurrency=1, name="cdc-apply")
async def apply_changes(stream: Any) -> None:
    """Apply change records batch by batch, as :class:`app.batching_consumer.BatchingConsumer` fetches them.

    Records do not come through ``stream`` (Faust's per-event path cost more CPU than the applier): iterating
    its channel once registers the change topics with Faust's conductor, which subscribes them and keeps
    them under Faust's consumer group and rebalances."""
    aiter(stream.channel)
    runtime = current_runtime()
    await runtime.ensure_started()
    consumer = app.batching_consumer
    sink = get_settings().sink
    wiring.wake = consumer.buffer.close
    await run_batches(
        runtime,
        consumer,
        lambda: consumer.buffer.take(sink.batch_size, sink.batch_timeout_s),
        stopping=wiring.stopping,
        drained=wiring.drained,
    )


async def run_batches(
    runtime: WorkerRuntime,
    consumer: Any,
    take: Callable[[], Awaitable[Sequence[Record]]],
    batches: int | None = None,
    stopping: asyncio.Event | None = None,
    drained: asyncio.Event | None = None,
) -> None:
    """The batch pipeline: batch N+1 is taken and decoded while batch N is in PostgreSQL; commits stay in
    batch order, one at a time (``batches``: stop after that many, for tests). Once ``stopping`` is set no
    new batch is taken (``take`` answers an empty batch once woken for the shutdown) and the loop returns
    after the batch in PostgreSQL commits, setting ``drained``. On a cancelled worker too,
    the batch in PostgreSQL is finished first."""
    committing: asyncio.Task[None] | None = None
    previous: Prepared | None = None
    taken = 0
    stopping = stopping or asyncio.Event()
    try:
        while (batches is None or taken < batches) and not stopping.is_set():
            records = await take()
            if not records:
                # Discarded by a rebalance while the batch filled, or woken to stop (the loop's condition).
                continue
            taken += 1
            if previous is None and committing is not None:
                # The batch before was not prepared: its offsets are known only once it has committed.
                await committing
            batch_span = tracing.batch_span(records)
            with trace.use_span(batch_span, end_on_exit=False):
                prepared = await runtime.prepare(records, after=previous)
            if committing is not None:
                await committing
            previous = prepared
            committing = asyncio.ensure_future(
                _commit_batch(runtime, consumer, records, prepared, batch_span)
            )
    finally:
        if committing is not None:
            await committing
        if drained is not None:
            drained.set()


async def _commit_batch(
    runtime: WorkerRuntime,
    consumer: Any,
    records: Sequence[Record],
    prepared: Prepared | None,
    batch_span: trace.Span = trace.INVALID_SPAN,
) -> None:
    with trace.use_span(batch_span, end_on_exit=True):
        outcome = await handle_batch(runtime, consumer, records, prepared)
        tracing.batch_outcome(batch_span, outcome)
    if outcome is not None:
        await commit_hint(consumer, outcome.next_offsets)


async def commit_hint(consumer: Any, offsets: Mapping[tuple[str, int], int]) -> None:
    """Tell Kafka where fetching resumes (PostgreSQL's offsets stay the truth); a failure is only logged."""
    try:
        await consumer.commit_offsets(offsets)
    except Exception as error:
        log.warning("committing offsets to Kafka failed (PostgreSQL has them)", error=str(error))


# -- timers -------------------------------------------------------------------------------------------------
@app.timer(interval=get_settings().sink.ttl_sweep_interval_s)
async def expire_ttl() -> None:
    """Cassandra emits no event when a TTL passes: the worker expires cells and rows itself."""
    tables = [(t.split(".")[-2], t.split(".")[-1]) for t in changes.topics if wanted(t)]
    await current_runtime().sweep(tables)


@app.task
async def declare_dead_letter_topic() -> None:
    await dead_letter_topic().declare()
    await schema_change_topic().declare()


@cache
def schema_change_topic() -> faust.types.TopicT:
    return app.topic(
        get_settings().kafka.schema_change_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
        retention=timedelta(days=365),
    )


@app.timer(interval=get_settings().sink.schema_check_interval_s)
async def schema_agent() -> None:
    """The schema-change agent: sync every replicated table's mirror with Cassandra's schema, resume the
    partitions of tables whose quarantine was lifted, publish recorded versions to the schema-changes topic."""
    runtime = current_runtime()
    try:
        quarantined = await runtime.check_schemas()
        await release_quarantined(runtime, app.batching_consumer, quarantined)
        await runtime.publish_schema_changes(send_schema_change)
    except Exception:
        log.exception("schema agent tick failed; will retry")


async def send_schema_change(key: bytes, value: bytes) -> None:
    await schema_change_topic().send(key=key, value=value)


@app.timer(interval=30.0)
async def publish_pending_dead_letters() -> None:
    """The outbox: dead letters committed but not yet on the DLQ topic (e.g. after a crash) go out here."""
    await publish_dead_letters(current_runtime())


@app.timer(interval=5.0)
async def discover_topics_timer() -> None:
    """Subscribe to change topics of tables created since start-up (no restart needed)."""
    await discover_topics(resubscribe=True)


@app.timer(interval=5.0)
async def recover_stalled_partitions() -> None:
    """Seek back partitions whose fetched records never reached a batch (see :func:`models.batch.stalled`)."""
    if app.rebalancing:
        wiring.stalled.clear()  # positions are being reset: start watching afresh afterwards
        return
    try:
        await recover_stalled(
            current_runtime(), app.batching_consumer, app.batching_consumer.buffer.partitions()
        )
    except Exception:
        log.exception("checking for stalled partitions failed; will retry")


async def recover_stalled(
    runtime: WorkerRuntime,
    consumer: Consumer,
    buffered: set[tuple[str, int]],
    watched: dict[tuple[str, int], int] | None = None,
) -> dict[tuple[str, int], int]:
    """One check: the partitions sought back, each to the offset applying resumes at."""
    watched = wiring.stalled if watched is None else watched
    assigned = consumer.assignment()
    paused = wiring.held.keys() | wiring.parked.keys()  # left in Kafka on purpose, sought when resumed
    offsets = {tp: o for tp, o in runtime.next_offsets().items() if TP(*tp) in assigned and tp not in paused}
    positions = {}
    for tp in offsets:
        try:
            position = await consumer.position(TP(*tp))
        except KafkaError:  # unassigned meanwhile (a rebalance began): the next check sees the new state
            continue
        if position is not None:
            positions[tp] = position
    seek, watch = stalled(offsets, positions, buffered, watched)
    watched.clear()
    watched.update(watch)
    for tp, offset in seek.items():
        log.warning(
            "fetched records never reached a batch: seeking back to where applying resumes",
            topic=tp[0],
            partition=tp[1],
            next_offset=offset,
            position=positions[tp],
        )
        await consumer.seek(TP(*tp), offset)
    return seek


@app.timer(interval=10.0)
async def consumer_lag_timer() -> None:
    """``cdc_consumer_lag_events``, read from Kafka's end offsets: it keeps moving while nothing commits (a
    dependency down), which is what the "no commit while lag" alert needs."""
    try:
        await report_lag(current_runtime(), app.batching_consumer)
    except Exception as error:  # Kafka unreachable: the gauge keeps its last value, /health shows Kafka
        log.info("consumer lag not read from Kafka; will retry", error=str(error))


async def report_lag(
    runtime: WorkerRuntime, consumer: Consumer, reported: set[tuple[str, int]] | None = None
) -> dict[tuple[str, int], int]:
    """Set the lag gauge of each claimed, assigned partition (end offset minus where applying resumes); the
    gauges of partitions no longer this worker's are removed. Returns the lags set."""
    reported = wiring.lag_reported if reported is None else reported
    assigned = consumer.assignment()
    offsets = {tp: o for tp, o in runtime.next_offsets().items() if TP(*tp) in assigned}
    ends = await consumer.highwaters(*(TP(*tp) for tp in offsets)) if offsets else {}
    lags = {tp: max(0, ends[TP(*tp)] - o) for tp, o in offsets.items() if TP(*tp) in ends}
    for topic, partition in reported - lags.keys():
        metrics.consumer_lag.remove(topic, str(partition))
    for (topic, partition), lag in lags.items():
        metrics.consumer_lag.labels(topic, str(partition)).set(lag)
    reported.clear()
    reported.update(lags)
    return lags


@app.timer(interval=10.0)
async def recheck_held_partitions() -> None:
    """Resume partitions held for an offset beyond their topic's end once an operator has reset it."""
    if not wiring.held:
        return
    try:
        await recheck_held(current_runtime(), app.batching_consumer)
    except Exception:
        log.exception("re-checking held partitions failed; will retry")


async def discover_topics(*, resubscribe: bool) -> None:
    """List the change topics and extend the subscription; ``resubscribe`` once the consumer has subscribed
    (before that, flagging a change makes Faust's start-up wait for a subscription that has not begun)."""
    try:
        found = [
            t
            for t in matching(
                await list_topics(
                    get_settings().kafka.bootstrap_servers, auth=client_kwargs(get_settings().kafka)
                ),
                _all(),
            )
            if wanted(t)
        ]
    except UNREACHABLE as error:
        log.warning("topic discovery failed", error=str(error))
        # Every 5 s: /health shows Kafka down while it does not answer (the consumer retries by itself).
        health.mark("kafka", "down", f"unreachable: {type(error).__name__}: {error}")
        return
    health.mark("kafka", "up", get_settings().kafka.bootstrap_servers)
    subscribe(found)
    if resubscribe and unsubscribed(list(changes.topics), app.topics._topic_name_index, app.rebalancing):  # type: ignore[attr-defined]
        app.topics._flag_changes()  # type: ignore[attr-defined]


def unsubscribed(
    wanted_topics: Sequence[str], subscribed: Mapping[str, object], rebalancing: bool
) -> list[str]:
    """Change topics the conductor has not subscribed yet, to flag (again) unless a rebalance is under way:
    Faust's conductor drops a subscription change that arrives during a rebalance, so one flag is not
    enough (seen here: a table discovered during the rebalance of Faust's own topics never replicated)."""
    if rebalancing:
        return []
    placeholder = placeholder_topic(get_settings().kafka.topic_prefix)
    return [t for t in wanted_topics if t not in subscribed and t != placeholder]


@app.timer(interval=15.0)
async def capture_coverage() -> None:
    """Tables with CDC on whose change topic never appeared: not captured by the agent (see app.capture)."""
    runtime = current_runtime()
    if runtime.cluster is None:
        return
    settings = get_settings()
    try:
        topics = await list_topics(settings.kafka.bootstrap_servers, auth=client_kwargs(settings.kafka))
    except UNREACHABLE as error:
        log.warning("capture check: topics not listed", error=str(error))
        return
    tables = capture.cdc_tables(runtime.cluster, settings.cassandra.keyspaces)
    missing = capture.uncaptured(
        tables,
        topics,
        settings.kafka.topic_prefix,
        wiring.first_seen,
        time.monotonic(),
        settings.sink.capture_grace_s,
    )
    metrics.uncaptured_tables.set(len(missing))
    if missing:
        log.warning("tables not captured", tables=[".".join(p) for p in missing], causes=capture.KNOWN_CAUSES)
        health.mark("capture", "warn", capture.describe(missing))
    elif "capture" in health.components:
        health.mark("capture", "up", f"{len(tables)} tables with CDC on, all with a change topic")


def _all() -> Any:
    return _pattern(get_settings().kafka.topic_prefix)


def subscribe(found: Sequence[str]) -> list[str]:
    """Add the topics of ``found`` not yet subscribed to the change channels; returns those."""
    current = list(changes.topics)
    new = [t for t in found if t not in current]
    if not new:
        return []
    names = sorted((set(current) | set(new)) - {placeholder_topic(get_settings().kafka.topic_prefix)})
    # The agent iterates clones of ``changes`` registered with the conductor: extend them all.
    for channel in [changes, *app.topics]:
        if list(channel.topics) == current:
            channel.topics = names
    log.info("subscribing to new change topics", topics=new)
    return new

"""The change agent: consumes every Debezium topic ``<prefix>.<keyspace>.<table>`` and applies it.

Thin wiring: raw bytes in (decoding happens in :mod:`models.debezium`), batches from ``take_events``,
``concurrency=1`` (Faust bug #606), offsets owned by PostgreSQL (claimed and sought on assignment), and no
exception ever leaves the loop (:meth:`app.runtime.Runtime.process` never raises).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from faust.types import TP

from app.faust_app import app
from app.runtime import Runtime
from app.settings import get_settings
from app.topics import (
    discover_now,
    keyspace_selected,
    list_topics,
    matching,
    placeholder_topic,
    topic_pattern,
)
from models.batch import Outcome, Record
from tables import progress

log = structlog.get_logger("cdc.agent")
settings = get_settings()
runtime = Runtime(settings)


PATTERN = topic_pattern(settings.kafka.topic_prefix)


def wanted(topic: str) -> bool:
    """A change topic of a replicated keyspace (all keyspaces unless ``cassandra.keyspaces`` names some)."""
    return keyspace_selected(topic, PATTERN, settings.cassandra.keyspaces)


_initial = [t for t in discover_now(settings.kafka.bootstrap_servers, PATTERN) if wanted(t)]
_initial = _initial or [placeholder_topic(settings.kafka.topic_prefix)]
changes = app.topic(*_initial, key_serializer="raw", value_serializer="raw")
dead_letter_topic = app.topic(
    settings.kafka.dlq_topic, key_serializer="raw", value_serializer="raw", partitions=1
)


def ours(partitions: Iterable[TP]) -> list[tuple[str, int]]:
    return sorted((tp.topic, tp.partition) for tp in partitions if wanted(tp.topic))


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def on_assigned(sender: Any, *args: Any, signal: Any, **_: Any) -> None:
    """Claim our partitions in PostgreSQL (new generation: fences off their previous owner).

    PostgreSQL's offsets decide where applying resumes: records before them are skipped, and a batch that
    starts after them makes the agent seek back (see :func:`resume_gaps`). A partition without a checkpoint
    starts at its earliest offset.
    """
    mine = ours(args[0])
    if not mine:
        return
    claims = await runtime.claim(mine)
    fresh = [TP(t, p) for (t, p), c in claims.items() if c.next_offset is None]
    if fresh:
        for tp, offset in (await app.consumer.earliest_offsets(*fresh)).items():
            runtime.expect((tp.topic, tp.partition), offset)
    log.info("partitions claimed", offsets={f"{t}:{p}": c.next_offset for (t, p), c in claims.items()})


async def resume_gaps(gaps: dict[tuple[str, int], int]) -> None:
    """Seek partitions back to their stored offset; past a retention gap, accept the loss loudly."""
    earliest = await app.consumer.earliest_offsets(*(TP(t, p) for t, p in gaps))
    for (topic, partition), stored in gaps.items():
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
        await app.consumer.seek(TP(topic, partition), stored)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def on_revoked(sender: Any, *args: Any, signal: Any, **_: Any) -> None:
    runtime.release(ours(args[0]))


def record_of(event: Any) -> Record:
    message = event.message
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
    )


async def send_dead_letter(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
    await dead_letter_topic.send(key=key, value=value, headers=headers)


def remember(outcome: Outcome) -> None:
    """Mirror progress and counters into the RocksDB tables (a local, read-only view)."""
    for (topic, partition), next_offset in outcome.next_offsets.items():
        path = outcome.table_of.get((topic, partition))
        last = {"next_offset": next_offset}
        if path is not None and path in outcome.last_ts_us:
            last["last_ts_us"] = outcome.last_ts_us[path]
        progress.update(progress.progress, f"{topic}:{partition}", last, {})
    per_table: dict[str, dict[str, int]] = {}
    for (path, kind), n in outcome.applied.items():
        per_table.setdefault(".".join(path), {})[kind] = n
    for table, counts in per_table.items():
        progress.update(progress.table_counters, table, {}, counts)


@app.agent(changes, concurrency=1, name="cdc-apply")
async def apply_changes(stream: Any) -> None:
    await runtime.ensure_started()
    batches = stream.take_events(settings.sink.batch_size, within=settings.sink.batch_timeout_s)
    async for events in batches:
        outcome = await runtime.process([record_of(e) for e in events])
        if outcome is None:
            continue
        if outcome.gaps:
            await resume_gaps(outcome.gaps)
        try:
            remember(outcome)
            if outcome.dead_letters:
                await runtime.publish_dead_letters(send_dead_letter)
        except Exception:
            log.exception("post-commit bookkeeping failed (the DLQ outbox timer will retry)")


@app.timer(interval=settings.sink.ttl_sweep_interval_s)
async def expire_ttl() -> None:
    """Cassandra emits no event when a TTL passes: the worker expires cells and rows itself."""
    tables = [(t.split(".")[-2], t.split(".")[-1]) for t in changes.topics if wanted(t)]
    await runtime.sweep(tables)


@app.task
async def declare_dead_letter_topic() -> None:
    await dead_letter_topic.declare()


@app.timer(interval=30.0)
async def publish_pending_dead_letters() -> None:
    """The outbox: dead letters committed but not yet on the DLQ topic (e.g. after a crash) go out here."""
    try:
        await runtime.publish_dead_letters(send_dead_letter)
    except Exception:
        log.exception("publishing dead letters failed; will retry")


@app.timer(interval=5.0)
async def discover_topics() -> None:
    """Subscribe to change topics of tables created since start-up (no restart needed)."""
    try:
        found = [
            t for t in matching(await list_topics(settings.kafka.bootstrap_servers), PATTERN) if wanted(t)
        ]
    except Exception as error:
        log.warning("topic discovery failed", error=str(error))
        return
    current = list(changes.topics)
    new = [t for t in found if t not in current]
    if new:
        names = sorted((set(current) | set(new)) - {placeholder_topic(settings.kafka.topic_prefix)})
        # The agent iterates clones of ``changes`` registered with the conductor: extend them all.
        for channel in [changes, *app.topics]:
            if list(channel.topics) == current:
                channel.topics = names
        app.topics._flag_changes()  # type: ignore[attr-defined]
        log.info("subscribing to new change topics", topics=new)

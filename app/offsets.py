"""``cdc offsets``: PostgreSQL's stored offsets next to Kafka's, and the operator's reset.

PostgreSQL's ``_cdc_checkpoints`` is the truth for where applying resumes. When a topic is recreated or its
offsets reset, a stored offset can lie beyond the topic's end: the worker then pauses that partition
(nothing is skipped) until an operator decides here where it resumes. A reset bumps the partition's
generation, so a worker holding it is fenced off its in-flight batch and claims it again at the new offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg import Connection

Status = Literal["ok", "beyond_end", "behind_retention", "not_started", "no_topic"]
TP = tuple[str, int]


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    stored: int | None
    """PostgreSQL's next offset (None: claimed, nothing applied yet)."""
    earliest: int | None
    end: int | None
    """Kafka's earliest and end offsets (None: the topic or partition does not exist)."""
    events: int

    @property
    def status(self) -> Status:
        return status(self.stored, self.earliest, self.end)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def status(stored: int | None, earliest: int | None, end: int | None) -> Status:
    """What a stored offset means against the partition's bounds in Kafka (pure)."""
    if earliest is None or end is None:
        return "no_topic"
    if stored is None:
        return "not_started"
    if stored > end:
        return "beyond_end"
    if stored < earliest:
        return "behind_retention"
    return "ok"


def reset_target(to: str, earliest: int, end: int) -> int:
    """``earliest``, ``latest`` or an offset between the two -> the offset to resume at (pure)."""
    if to == "earliest":
        return earliest
    if to == "latest":
        return end
    try:
        offset = int(to)
    except ValueError:
        raise ValueError(f"--to must be earliest, latest or an offset, not {to!r}") from None
    if not earliest <= offset <= end:
        raise ValueError(f"--to {offset} is outside the partition's offsets {earliest}..{end}")
    return offset


def checkpoints(
    conn: Connection[Any], group: str, topic: str | None = None
) -> list[tuple[str, int, int, int]]:
    """``(topic, partition, next_offset, events)`` of ``group`` (next_offset -1: nothing applied yet)."""
    return conn.execute(
        """SELECT topic, partition, next_offset, events FROM _cdc_checkpoints
           WHERE group_id = %s AND (%s::text IS NULL OR topic = %s) ORDER BY topic, partition""",
        (group, topic, topic),
    ).fetchall()


async def kafka_bounds(
    bootstrap: str, partitions: Iterable[TP], auth: Mapping[str, Any] | None = None
) -> dict[TP, tuple[int, int]]:
    """Earliest and end offset of each partition that exists in Kafka (``auth``: security arguments)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **(auth or {}))
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        existing = [
            TopicPartition(t, p) for t, p in partitions if p in (consumer.partitions_for_topic(t) or set())
        ]
        if not existing:
            return {}
        first = await consumer.beginning_offsets(existing)
        last = await consumer.end_offsets(existing)
        return {(tp.topic, tp.partition): (first[tp], last[tp]) for tp in existing}
    finally:
        await consumer.stop()


def report(
    rows: Sequence[tuple[str, int, int, int]], bounds: Mapping[TP, tuple[int, int]]
) -> list[PartitionOffsets]:
    result = []
    for topic, partition, next_offset, events in rows:
        earliest, end = bounds.get((topic, partition), (None, None))
        stored = None if next_offset < 0 else next_offset
        result.append(PartitionOffsets(topic, partition, stored, earliest, end, events))
    return result


def reset(conn: Connection[Any], group: str, offsets: Mapping[TP, int]) -> None:
    """Store new next offsets (inside the caller's transaction); a new generation fences their owner."""
    for (topic, partition), offset in sorted(offsets.items()):
        conn.execute(
            """UPDATE _cdc_checkpoints SET next_offset = %s, generation = nextval('_cdc_generation_seq'),
                      updated_at = now()
               WHERE group_id = %s AND topic = %s AND partition = %s""",
            (offset, group, topic, partition),
        )


async def offsets_at(
    bootstrap: str, partitions: Iterable[TP], timestamp_ms: int, auth: Mapping[str, Any] | None = None
) -> dict[TP, int | None]:
    """The first offset of each partition whose record time is at or after ``timestamp_ms`` (None: none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **(auth or {}))
    await consumer.start()
    try:
        found = await consumer.offsets_for_times({TopicPartition(t, p): timestamp_ms for t, p in partitions})
        return {(tp.topic, tp.partition): (o.offset if o is not None else None) for tp, o in found.items()}
    finally:
        await consumer.stop()


def rewound(stored: Mapping[TP, int], at: Mapping[TP, int | None]) -> dict[TP, int]:
    """Where partitions resume to replay everything from a point in time: never later than stored (pure)."""
    result = {}
    for tp, offset in stored.items():
        since = at.get(tp)
        result[tp] = offset if since is None else min(offset, since)
    return result

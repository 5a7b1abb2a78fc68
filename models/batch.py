"""What one consumed batch is made of and what applying it did (pure data and bookkeeping)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

TablePath = tuple[str, str]
"""``(keyspace, table)`` in Cassandra."""
TP = tuple[str, int]
"""``(topic, partition)`` in Kafka."""


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: Record
    reason: str
    message: str


@dataclass
class Outcome:
    """What a committed batch did (for counters, tables and metrics)."""

    applied: Counter[tuple[TablePath, str]] = field(default_factory=Counter)
    rows_changed: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dlq_ids: list[int] = field(default_factory=list)
    skipped: int = 0
    next_offsets: dict[TP, int] = field(default_factory=dict)
    last_ts_us: dict[TablePath, int] = field(default_factory=dict)
    table_of: dict[TP, TablePath] = field(default_factory=dict)
    consumed: Counter[TP] = field(default_factory=Counter)
    """Records seen for the first time per partition (applied, dead-lettered or empty)."""
    gaps: dict[TP, int] = field(default_factory=dict)
    """Partitions whose records started past the stored offset: seek back to it (nothing of them applied)."""
    gap_starts: dict[TP, int] = field(default_factory=dict)
    """For each gap, the first offset the batch held: the same gap seen twice after a seek is a hole in the
    log (transaction markers, compaction), not missed records."""
    held: Counter[TP] = field(default_factory=Counter)
    """Records of quarantined tables: left in Kafka (not applied, counted or committed); the agent pauses
    their partitions and seeks back once the quarantine is lifted."""
    not_owned: Counter[TP] = field(default_factory=Counter)
    """Records of partitions this worker holds no claim for: left alone (not applied, counted or committed)
    for the partition's owner to apply."""

    def merge(self, part: Outcome) -> None:
        """Add ``part`` (a later sub-batch of the same batch) into this outcome."""
        self.applied.update(part.applied)
        self.rows_changed += part.rows_changed
        self.dead_letters.extend(part.dead_letters)
        self.dlq_ids.extend(part.dlq_ids)
        self.skipped += part.skipped
        self.consumed.update(part.consumed)
        self.not_owned.update(part.not_owned)
        self.held.update(part.held)
        for tp, stored in part.gaps.items():
            self.gaps.setdefault(tp, stored)
        for tp, first in part.gap_starts.items():
            self.gap_starts.setdefault(tp, first)
        self.next_offsets.update(part.next_offsets)
        self.table_of.update(part.table_of)
        for path, ts in part.last_ts_us.items():
            self.last_ts_us[path] = max(self.last_ts_us.get(path, 0), ts)


def contiguous_ends(records: Iterable[Record], stored: Mapping[TP, int | None]) -> dict[TP, tuple[int, int]]:
    """Per partition whose records in the batch leave out an offset, ``(first missing, next held)``; those
    at or past the first missing one must not apply (pure).

    A partition's run starts at its stored offset (or, without one, at its lowest offset in the batch);
    offsets below the run's end are copies or already applied. A batch may hold records of one partition
    from two fetches with a hole between them (records dropped while the partition was inactive, then
    fetched further on): applying both and storing the highest offset would skip the hole silently."""
    offsets: dict[TP, set[int]] = {}
    for r in records:
        offsets.setdefault((r.topic, r.partition), set()).add(r.offset)
    gaps: dict[TP, tuple[int, int]] = {}
    for tp, held in offsets.items():
        start = stored.get(tp)
        expected = min(held) if start is None else start
        for offset in sorted(held):
            if offset > expected:
                gaps[tp] = (expected, offset)
                break
            expected = max(expected, offset + 1)
    return gaps


def stalled(
    next_offsets: Mapping[TP, int],
    positions: Mapping[TP, int],
    buffered: Collection[TP],
    watched: Mapping[TP, int],
) -> tuple[dict[TP, int], dict[TP, int]]:
    """Partitions whose fetched records never reached a batch, to seek back to their next offset; and those
    to watch until the next check (pure).

    A partition is suspect when the consumer's position lies past the offset applying resumes at and none
    of its records wait in the buffer: records fetched and then dropped (while the partition was inactive,
    or during a rebalance, with no committed offset to seek back to) leave it so, and nothing notices until
    its next record arrives, which for a quiet table may be never. A batch being applied looks the same for
    a moment, so only a partition suspect at two checks in a row with the same next offset is sought back
    (seeking back a busy partition costs only duplicates, which are skipped)."""
    suspects = {
        tp: offset
        for tp, offset in next_offsets.items()
        if tp in positions and positions[tp] > offset and tp not in buffered
    }
    seek = {tp: offset for tp, offset in suspects.items() if watched.get(tp) == offset}
    return seek, {tp: offset for tp, offset in suspects.items() if tp not in seek}


ProgressUpdate = tuple[str, dict[str, int], dict[str, int]]
"""``(key, fields to overwrite, counts to add)`` for one entry of a progress table."""


def progress_updates(outcome: Outcome) -> tuple[list[ProgressUpdate], list[ProgressUpdate]]:
    """What a committed batch changes in the ``progress`` (per partition) and ``table-counters`` (per
    table, by mutation kind) tables."""
    partitions: list[ProgressUpdate] = []
    for (topic, partition), next_offset in sorted(outcome.next_offsets.items()):
        last = {"next_offset": next_offset}
        path = outcome.table_of.get((topic, partition))
        if path is not None and path in outcome.last_ts_us:
            last["last_ts_us"] = outcome.last_ts_us[path]
        partitions.append((f"{topic}:{partition}", last, {}))
    per_table: dict[str, dict[str, int]] = {}
    for (path, kind), n in outcome.applied.items():
        per_table.setdefault(".".join(path), {})[kind] = n
    tables: list[ProgressUpdate] = [(table, {}, counts) for table, counts in sorted(per_table.items())]
    return partitions, tables

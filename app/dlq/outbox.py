"""The dead-letter outbox: ``_cdc_dlq_records`` committed with their batch, then published to the DLQ topic.

A worker leases unpublished rows (``FOR UPDATE SKIP LOCKED``, for ``lease_s``: no other worker sends them
meanwhile), sends them, and marks only the rows the broker acknowledged. A send still in flight when the wait
ends is awaited on the next round instead of being sent again, so a broker that comes back gets each dead letter
once. A row whose send fails counts an attempt and goes to the back of the queue: it cannot block the others.
A value too large for the producer is published truncated, with a header saying so; the full bytes stay in
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row

from app.dlq.sealing import is_sealed

HEADER_SLACK = 8_192
"""Room kept for the headers and the record's framing under the producer's request limit."""


def lease(conn: Connection[Any], owner: str, limit: int, lease_s: float) -> list[dict[str, Any]]:
    """Lease up to ``limit`` unpublished rows (fewest attempts first, then oldest) to ``owner``."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """UPDATE _cdc_dlq_records d SET publish_owner = %s,
                   publish_lease = now() + make_interval(secs => %s)
               FROM (SELECT id FROM _cdc_dlq_records
                     WHERE published_at IS NULL
                       AND (publish_lease IS NULL OR publish_lease < now() OR publish_owner = %s)
                     ORDER BY publish_attempts, id LIMIT %s FOR UPDATE SKIP LOCKED) due
               WHERE d.id = due.id
               RETURNING d.id, d.topic, d.partition, d."offset", d.error_type, d.error_message, d.key,
                         d.value, d.recorded_at""",
            (owner, lease_s, owner, limit),
        )
        return sorted(cur.fetchall(), key=lambda r: int(r["id"]))


def published(conn: Connection[Any], ids: Sequence[int], truncated: Sequence[int]) -> None:
    conn.execute(
        """UPDATE _cdc_dlq_records SET published_at = now(), publish_lease = NULL, publish_error = NULL,
               truncated = id = ANY(%s)
           WHERE id = ANY(%s)""",
        (list(truncated), list(ids)),
    )


def failed(conn: Connection[Any], errors: dict[int, str]) -> None:
    for record_id, error in errors.items():
        conn.execute(
            """UPDATE _cdc_dlq_records SET publish_attempts = publish_attempts + 1, publish_error = %s,
                   publish_lease = NULL
               WHERE id = %s""",
            (error[:2000], record_id),
        )


def message(
    row: dict[str, Any], max_bytes: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]], bool]:
    """Key, value and headers of a dead letter's DLQ record, the value cut to fit ``max_bytes`` (pure);
    the last item says whether it was cut."""
    key = bytes(row["key"]) if row["key"] is not None else None
    value = bytes(row["value"]) if row["value"] is not None else None
    headers = headers_of(row)
    room = max_bytes - HEADER_SLACK - len(key or b"")
    if value is None or len(value) <= room:
        return key, value, headers, False
    headers.append(("cdc.truncated", f"value cut from {len(value)} to {max(room, 0)} bytes".encode()))
    return key, value[: max(room, 0)], headers, True


def headers_of(row: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead letter: where it came from, why, and when (pure)."""
    return [
        ("cdc.origin.topic", str(row["topic"]).encode()),
        ("cdc.origin.partition", str(row["partition"]).encode()),
        ("cdc.origin.offset", str(row["offset"]).encode()),
        ("cdc.error.type", str(row["error_type"]).encode()),
        ("cdc.error.message", str(row["error_message"]).encode()[:4000]),
        ("cdc.recorded_at", row["recorded_at"].isoformat().encode()),
        ("cdc.dlq.id", str(row["id"]).encode()),
        *([("cdc.sealed", b"fernet-v1")] if is_sealed(_bytes(row.get("value"))) else []),
    ]


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)

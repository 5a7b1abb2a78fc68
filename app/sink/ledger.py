"""The production :class:`app.sink.ports.Ledger`: offsets with fencing (:mod:`app.sink.checkpoints`) and dead
letters (``_cdc_dlq_records``) in PostgreSQL, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from app.sink import checkpoints
from models.batch import DeadLetter

_INSERT_DEAD_LETTER = """
    INSERT INTO _cdc_dlq_records (topic, partition, "offset", error_type, error_message, key, value, headers)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (topic, partition, "offset") DO UPDATE SET
        error_type = EXCLUDED.error_type, error_message = EXCLUDED.error_message,
        status = CASE WHEN _cdc_dlq_records.status = 'replaying' THEN 'replaying' ELSE 'pending' END
    RETURNING id"""
"""The same record dead-lettered again (its offsets were reset) is pending again, with the new reason."""


class PostgresLedger:
    claim = staticmethod(checkpoints.claim)
    advance = staticmethod(checkpoints.advance)

    def record_dead_letters(self, conn: Connection[Any], letters: Sequence[DeadLetter]) -> list[int]:
        ids: list[int] = []
        for letter in letters:
            r = letter.record
            params = (r.topic, r.partition, r.offset, letter.reason, letter.message, r.key, r.value)
            row = conn.execute(
                _INSERT_DEAD_LETTER, (*params, Jsonb({"timestamp_ms": r.timestamp_ms}))
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
        return ids

    def lock_partitions(self, conn: Connection[Any], keys: Sequence[int]) -> None:
        if keys:
            # unnest keeps the array's (ascending) order, so every transaction locks in the same order.
            conn.execute(
                "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS u(k)", (list(keys),)
            )

"""Every reason an event can be dead-lettered: one class per typed reason, all under :class:`PermanentEventError`.

The README's list of dead-letter reasons is checked against :func:`dead_letter_reasons` by a unit test.
"""

from __future__ import annotations

from typing import ClassVar


class PermanentEventError(Exception):
    """An event that retrying cannot fix. ``reason`` is the typed DLQ reason."""

    reason: ClassVar[str] = "permanent_error"


class MalformedEvent(PermanentEventError):
    """The bytes are not a Debezium change event (not JSON, not an object, missing fields)."""

    reason = "malformed_event"


class UnknownSchemaId(PermanentEventError):
    """An Avro payload names a schema id the registry does not know."""

    reason = "unknown_schema_id"


class AvroDecodeError(PermanentEventError):
    """The Avro payload does not decode with its writer schema."""

    reason = "avro_decode_error"


class AvroWithoutRegistry(PermanentEventError):
    """An Avro record arrived but no schema registry is configured (``registry.url``)."""

    reason = "avro_without_registry"


class ValueMappingError(PermanentEventError, ValueError):
    """A column value does not fit the column's CQL type; the message names the type and the value."""

    reason = "value_mapping_error"


class UnknownTable(PermanentEventError):
    """The event names a table that does not exist in Cassandra."""

    reason = "unknown_table"


class UnknownColumn(PermanentEventError):
    """The event names a column the table does not have, even after refreshing the schema."""

    reason = "unknown_column"


class UnsupportedEvent(PermanentEventError):
    """A well-formed event the sink cannot express (e.g. an unknown op code)."""

    reason = "unsupported_event"


class TopicMismatch(PermanentEventError):
    """The event's ``source.keyspace``/``source.table`` is not the table its topic is named after."""

    reason = "topic_mismatch"


class TimestampOutOfRange(PermanentEventError):
    """The event's write time lies further in the future than ``sink.max_clock_skew_s`` allows."""

    reason = "timestamp_out_of_range"


class KeyTooLarge(PermanentEventError):
    """A primary-key value is larger than PostgreSQL can index (btree limit ~2.7 kB; Cassandra allows 64 KiB)."""

    reason = "key_too_large"


class ValueRejected(PermanentEventError):
    """PostgreSQL refuses a value of this event alone (a data or integrity error), found by bisecting its batch."""

    reason = "value_rejected"


class SnapshotEvent(PermanentEventError):
    """A Debezium snapshot event (``source.snapshot``): it carries its query's time, not the cells' write times."""

    reason = "snapshot_event"


class InternalError(PermanentEventError):
    """A bug met while applying this event alone; dead-lettered so the stream goes on."""

    reason = "internal_error"


def _tree(cls: type[PermanentEventError]) -> list[type[PermanentEventError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _tree(child))]


def dead_letter_reasons() -> dict[str, str]:
    """Each reason of this module's classes under :class:`PermanentEventError` -> its docstring's first line."""
    return {
        cls.reason: (cls.__doc__ or "").strip().splitlines()[0]
        for cls in _tree(PermanentEventError)[1:]
        if cls.__module__ == __name__
    }

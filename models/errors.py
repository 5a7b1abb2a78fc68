"""Typed reasons for events that can never be applied; each goes to the dead-letter queue under its reason."""

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


class ValueMapping(PermanentEventError):
    """A column value does not fit the column's CQL type."""

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


class InternalError(PermanentEventError):
    """A bug met while applying this event alone; dead-lettered so the stream goes on."""

    reason = "internal_error"

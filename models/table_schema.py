"""The part of a Cassandra table's schema the pipeline needs, independent of cassandra-driver."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from models.cql_types import CqlType, cell_order_bytes, debezium_converter, is_multicell
from models.errors import ValueMappingError
from models.mutations import Key


@dataclass(frozen=True)
class Column:
    name: str
    type: CqlType


@dataclass(frozen=True)
class TableSchema:
    keyspace: str
    table: str
    partition_key: tuple[Column, ...]
    clustering: tuple[Column, ...] = ()
    descending: tuple[bool, ...] = ()
    columns: tuple[Column, ...] = ()
    """Regular (non-key, non-static) columns in schema order."""
    static: frozenset[str] = frozenset()
    dropped: frozenset[str] = frozenset()
    """Columns dropped from the table (``system_schema.dropped_columns``) and not added again: Cassandra
    discards their data, so their cells in events are ignored, not unknown."""

    def partition_of(self, key: Key) -> Key:
        return key[: len(self.partition_key)]

    def clustering_of(self, key: Key) -> Key:
        return key[len(self.partition_key) :]

    @cached_property
    def by_name(self) -> dict[str, Column]:
        return {c.name: c for c in (*self.partition_key, *self.clustering, *self.columns)}

    @cached_property
    def regular(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @cached_property
    def converters(self) -> dict[str, Callable[[object], object]]:
        """Debezium value -> PostgreSQL value, per column (default handling modes)."""
        return {name: debezium_converter(c.type) for name, c in self.by_name.items()}

    @cached_property
    def hint_columns(self) -> frozenset[str]:
        """Columns whose event value is only a hint and must be read back (non-frozen collections/UDTs)."""
        return frozenset(c.name for c in self.columns if is_multicell(c.type))

    def order_bytes(self, column: str, value: object) -> bytes:
        """Cassandra's bytes for the equal-timestamp rule; values read back from PostgreSQL are normalised
        first (numeric -> int for varint), and a value that still cannot be serialised compares by its text."""
        cql_type = self.regular[column].type
        if cql_type.name == "varint" and isinstance(value, Decimal):
            value = int(value)
        try:
            return cell_order_bytes(cql_type, value)
        except ValueMappingError:
            return repr(value).encode()

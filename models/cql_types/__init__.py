"""CQL column types: parsing, the PostgreSQL type of each, and value conversion, one module per family.

Column types always come from Cassandra's schema (``ColumnMetadata.cql_type``), never from the JSON of an
event.  :func:`parse_cql_type` turns that text into a :class:`CqlType`; :func:`pg_type` names the PostgreSQL
column type; :func:`from_debezium` and :func:`from_driver` turn a Debezium event value or a cassandra-driver
value into the *same* Python value.  The encoding reference (what Debezium sends for each type, the jsonb
encoding, Cassandra's order, what is unresolved) is ``docs/type-mapping.md``.

Layers, each importing only those above it: ``parsing`` -> ``type_map``, ``value_errors`` -> ``scalars`` ->
``numeric``, ``temporal`` -> ``ordering`` -> ``jsonb`` -> ``structures`` -> ``conversion``, ``cell_bytes``.
"""

from models.cql_types.cell_bytes import cell_order_bytes
from models.cql_types.conversion import debezium_converter, driver_converter, from_debezium, from_driver
from models.cql_types.jsonb import JsonbValue, to_json_compatible
from models.cql_types.numeric import DebeziumModes
from models.cql_types.parsing import CqlType, UnsupportedType, format_cql_type, parse_cql_type
from models.cql_types.type_map import is_multicell, pg_type

__all__ = [
    "CqlType",
    "DebeziumModes",
    "JsonbValue",
    "UnsupportedType",
    "cell_order_bytes",
    "debezium_converter",
    "driver_converter",
    "format_cql_type",
    "from_debezium",
    "from_driver",
    "is_multicell",
    "parse_cql_type",
    "pg_type",
    "to_json_compatible",
]

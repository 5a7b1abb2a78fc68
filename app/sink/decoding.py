"""Record bytes -> :class:`models.debezium.Envelope`, JSON or Avro per record, with the schema registry's I/O.

:class:`RecordDecoder` is the Applier's ``decode`` hook. Each part (key, value) that starts with the Confluent
magic byte ``0x00`` is Avro (writer schema fetched by id from a Confluent-compatible registry, e.g.
Apicurio's ``/apis/ccompat/v7``); anything else is JSON. JSON and Avro records can share a topic.

Failure classes:

- permanent (dead-lettered under the error's ``reason``): bad framing or undecodable payload
  (``avro_decode_error``), a schema id the registry answers 404 for (``unknown_schema_id``), a non-Avro schema
  (``unsupported_event``), an Avro record while no registry URL is configured (``avro_without_registry``);
- transient (the batch is retried with backoff, never dead-lettered): the registry unreachable, timing out, or
  answering anything but success or 404 -- raised as :class:`RegistryUnavailable`, a :class:`ConnectionError`,
  which :mod:`app.sink.failures` classifies as transient.

See :mod:`models.avro` for the normalisation to the JSON converter's shape and for why the Debezium Cassandra
agent itself cannot produce Avro for most tables.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import orjson
from schema_registry.client import SchemaRegistryClient

from models.avro import AvroReader, is_wire_format, parse_wire_format
from models.debezium import Envelope, envelope, parse_json
from models.errors import AvroWithoutRegistry, MalformedEvent, UnknownSchemaId, UnsupportedEvent

SchemaLookup = Callable[[int], AvroReader]
"""Schema id -> reader of its writer schema."""


class RegistryUnavailable(ConnectionError):
    """The schema registry cannot answer now; transient (the batch is retried)."""

    component = "registry"


class RegistrySchemas:
    """Writer schemas by id from a Confluent-compatible registry, parsed once and cached for the process."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout = httpx.Timeout(timeout_s)
        self.client = SchemaRegistryClient(url, timeout=self.timeout)
        self._readers: dict[int, AvroReader] = {}
        self._lock = threading.Lock()

    def __call__(self, schema_id: int) -> AvroReader:
        reader = self._readers.get(schema_id)
        if reader is not None:
            return reader
        with self._lock:
            reader = self._readers.get(schema_id)
            if reader is None:
                reader = AvroReader(self._fetch(schema_id))
                self._readers[schema_id] = reader
            return reader

    def _fetch(self, schema_id: int) -> str:
        url, method = self.client.url_manager.url_for("get_by_id", schema_id=schema_id)
        try:
            response = self.client.request(url, method=method, timeout=self.timeout)
        except httpx.HTTPError as error:
            raise RegistryUnavailable(
                f"schema registry {self.url} unreachable: {type(error).__name__}: {error}"
            ) from error
        if response.status_code == httpx.codes.NOT_FOUND:
            raise UnknownSchemaId(f"schema id {schema_id} is not in the registry at {self.url}")
        if not response.is_success:
            raise RegistryUnavailable(
                f"schema registry {self.url} answered {response.status_code} for schema id {schema_id}: "
                f"{response.text[:300]}"
            )
        try:
            body = response.json()
        except ValueError as error:
            raise RegistryUnavailable(f"schema registry {self.url} answered non-JSON: {error}") from error
        schema_type = str(body.get("schemaType") or "AVRO") if isinstance(body, dict) else "?"
        if schema_type.upper() != "AVRO":
            raise UnsupportedEvent(f"schema id {schema_id} is a {schema_type} schema, not Avro")
        schema = body.get("schema") if isinstance(body, dict) else None
        if not isinstance(schema, str):
            raise RegistryUnavailable(
                f"schema registry {self.url} answered without a schema for id {schema_id}"
            )
        return schema


class RecordDecoder:
    """The Applier's ``decode`` hook: ``(key bytes, value bytes) -> Envelope | None`` (None for a tombstone)."""

    def __init__(self, registry_url: str | None = None, *, schemas: SchemaLookup | None = None) -> None:
        self.registry_url = registry_url
        self.schemas: SchemaLookup | None = schemas or (
            RegistrySchemas(registry_url) if registry_url else None
        )

    def __call__(self, key: bytes | None, value: bytes | None) -> Envelope | None:
        if value is None:
            return None
        if not is_wire_format(value) and not is_wire_format(key):
            return parse_json(key, value)
        return envelope(self._part(key, "key") if key else {}, self._part(value, "value"))

    def _part(self, data: bytes, what: str) -> object:
        if not is_wire_format(data):
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError as error:
                raise MalformedEvent(f"{what} is neither Avro nor JSON: {error}") from None
        schema_id, payload = parse_wire_format(data)
        if self.schemas is None:
            raise AvroWithoutRegistry(
                f"Avro {what} (schema id {schema_id}) but no schema registry is configured (set registry.url)"
            )
        return self.schemas(schema_id).decode(payload)

"""One typed settings object for the whole application, validated once at start-up.

Sources, highest priority first: keyword arguments, environment variables (``CDC_`` prefix, ``__`` between
nested keys, e.g. ``CDC_POSTGRES__DSN``), a TOML file named by ``CDC_CONFIG_FILE``, then the defaults, which
point at the local stack (``cdc stack up``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from app.tls import TlsSettings, TlsVersion
from app.vault.client import VaultRefused, VaultUnavailable
from app.vault.config import VaultSettings
from app.vault.refs import is_reference, references
from app.vault.resolve import nested, read_references
from models.transforms import Rule, TransformConfigError, hashing_rules, parse_rules


class ConfigError(Exception):
    """Raised when configuration is invalid; the message names the offending key."""


def long_secret(value: SecretStr | None) -> SecretStr | None:
    """A secret of at least 16 characters (tokens, keys), or none (a Vault reference is checked once read)."""
    if value is not None and is_reference(value.get_secret_value()):
        return value
    if value is not None and len(value.get_secret_value()) < 16:
        raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 32`)")
    return value


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:59092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """For the worker's consumer and producer and every admin client (SSL: ``kafka.tls``)."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    """May be a Vault reference (``vault:secret/cdc#kafka_password``)."""
    tls: TlsSettings = TlsSettings()
    """CA, client certificate and verification of the SSL and SASL_SSL protocols (``enabled`` is implied)."""
    topic_prefix: str = "cdc"
    dlq_topic: str = "dlq-events"
    schema_change_topic: str = "schema-changes"
    """Every recorded schema version is published here (topic created with 365 days' retention)."""
    session_timeout_s: float = Field(default=60.0, ge=6.0)
    """Consumer group session timeout: how long a crashed member holds its partitions (the broker's
    ``group.min.session.timeout.ms`` is 6 s by default)."""

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_has_no_dot(cls, value: str) -> str:
        if not value or value.endswith("."):
            raise ValueError("must be non-empty and must not end with '.'")
        return value

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"kafka.sasl_username and kafka.sasl_password: needed by {self.security_protocol}"
            )
        return self


class PostgresSettings(BaseModel):
    dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:55432/cdc")
    user: str | None = None
    """Overrides the DSN's user."""
    password: SecretStr | None = None
    """Overrides the DSN's password. May be a Vault reference: ``vault:secret/cdc#pg_password`` (KV v2),
    or ``vault-db:ROLE`` for dynamic credentials of the database secrets engine (user and password, renewed
    and rotated while the worker runs)."""
    role: str | None = None
    """A role every connection switches to (``SET ROLE`` at connect), so objects created by rotating users
    are owned by it (``cdc_writer`` with dynamic credentials; README, Security)."""
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    """Overrides the DSN's ``sslmode``; use ``verify-full`` with ``sslrootcert`` in production."""
    sslrootcert: Path | None = None
    sslcert: Path | None = None
    sslkey: Path | None = None
    ssl_min_protocol_version: TlsVersion = "TLSv1.2"
    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=4, ge=1)
    statement_timeout_ms: int = Field(default=60_000, ge=0)
    ddl_lock_timeout_ms: int = Field(default=2_000, ge=1)
    """How long a mirror's DDL (e.g. ADD COLUMN) waits for its lock before giving up and retrying later,
    so it never queues in front of readers."""


class CassandraSettings(BaseModel):
    hosts: list[str] = ["127.0.0.1"]
    port: int = Field(default=59042, ge=1, le=65535)
    local_dc: str = "datacenter1"
    username: str | None = None
    password: SecretStr | None = None
    """May be a Vault reference (``vault:secret/cdc#cassandra_password``)."""
    keyspaces: list[str] = []
    """Keyspaces to replicate; empty means every keyspace that has a CDC topic."""
    readback_consistency: Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL", "EACH_QUORUM"] = (
        "LOCAL_QUORUM"
    )
    tls: TlsSettings = TlsSettings()
    """Client encryption (``tls.enabled``), verified against ``tls.ca_file`` with the host name by default."""
    """Consistency of the collection read-back: with RF > 1 a lagging replica must not become the truth."""


class RegistrySettings(BaseModel):
    url: str | None = None
    """Confluent-compatible schema registry URL, needed only for Avro-encoded topics."""


class WebSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=6066, ge=1, le=65535)
    token: SecretStr | None = None
    """Bearer token of the management API: every mutating endpoint and every one that returns payloads or
    configuration needs ``Authorization: Bearer <token>``. Unset: those endpoints are off (403)."""

    _token_is_long = field_validator("token")(long_secret)


class DlqSettings(BaseModel):
    topic_retention_days: float = Field(default=30.0, gt=0)
    """Retention of the DLQ topic, set when the worker creates it."""
    retention_days: float = Field(default=30.0, gt=0)
    """Closed dead letters (replayed, resolved, ignored) older than this are purged from PostgreSQL."""
    replay_rate: float | None = Field(default=None, gt=0)
    """Records per second of every replay that names no rate (None: as fast as it goes). Hot-reloadable."""
    max_message_bytes: int = Field(default=1_000_000, ge=16_384)
    """The producer's request limit: a longer dead letter is published cut, with a ``cdc.truncated`` header."""
    ack_timeout_s: float = Field(default=30.0, gt=0)
    """How long one outbox round waits for the broker's acknowledgements."""
    publish_batch: int = Field(default=500, ge=1)
    publish_lease_s: float = Field(default=300.0, gt=0)
    """How long rows leased by one worker's outbox are left alone by the others."""
    job_stale_s: float = Field(default=60.0, gt=0)
    """A running replay job without a heartbeat for this long is taken over (its worker died)."""


class SinkSettings(BaseModel):
    batch_size: int = Field(default=2000, ge=1)
    batch_timeout_s: float = Field(default=0.5, gt=0)
    shutdown_timeout_s: float = Field(default=30.0, gt=0)
    """On SIGTERM: how long the batch in flight may take to commit before the pools close anyway (its
    transaction then rolls back; PostgreSQL's offsets make the next start apply it). Keep it under the
    orchestrator's grace period (the chart's terminationGracePeriodSeconds: 60)."""
    tombstone_grace_s: int = Field(default=864_000, ge=0)
    """How long tombstones are remembered (like Cassandra's gc_grace_seconds)."""
    ttl_sweep_interval_s: float = Field(default=5.0, gt=0)
    table_targets: dict[str, str] = {}
    """Per-table mirror names, ``{"ks.tbl": "schema.name"}``; default ``"ks"."tbl"``."""
    readback_concurrency: int = Field(default=64, ge=1)
    dropped_columns: dict[str, Literal["keep", "drop"]] = {}
    """Per table (``"ks.tbl"``, or ``"*"`` for all): a column dropped in Cassandra is kept in the mirror and
    no longer written (``keep``, the default) or dropped (``drop``)."""
    capture_grace_s: float = Field(default=120.0, ge=0)
    """How long a table may have CDC on without a change topic before it is reported as not captured."""
    schema_check_interval_s: float = Field(default=5.0, gt=0)
    """How often the schema agent compares each replicated table with its mirror."""
    max_clock_skew_s: float | None = Field(default=3600.0, gt=0)
    """An event whose write time lies further in the future is dead-lettered (``timestamp_out_of_range``):
    it would shadow every later write. None: no limit."""
    dlq_breaker_ratio: float | None = Field(default=0.5, gt=0, le=1)
    """Pause instead of dead-lettering when more than this share of the last 1,000 events would be
    dead-lettered (and at least ``dlq_breaker_minimum``). None: never pause for that."""
    dlq_breaker_minimum: int = Field(default=20, ge=1)
    circuit_threshold: int = Field(default=5, ge=1)
    """Consecutive failures of a dependency that open its circuit breaker."""
    circuit_probe_after_s: float = Field(default=15.0, gt=0)
    """How long an open circuit holds every caller back before one attempt probes the dependency."""


def qualified_tables(value: list[str]) -> list[str]:
    """``keyspace.table`` names (or ``"*"``), else ValueError naming the first that is not one."""
    bad = [t for t in value if "." not in t and t != "*"]
    if bad:
        raise ValueError(f"{bad[0]!r}: use keyspace.table")
    return value


class ReconcileSettings(BaseModel):
    interval_s: float | None = Field(default=3600.0, gt=0)
    """How often one worker reconciles (``tables``, ``strategy``); None: only on demand."""
    tables: list[str] = []
    """``keyspace.table`` names of the scheduled job; empty: every mirrored table."""
    strategy: Literal["CHECKSUM", "ROW_COUNT", "SAMPLE"] = "CHECKSUM"
    ranges: int = Field(default=256, ge=1)
    concurrency: int = Field(default=4, ge=1, le=64)
    row_threshold: int = Field(default=2000, ge=1)
    recheck_after_s: float = Field(default=5.0, ge=0)
    lag_allowance_s: float = Field(default=30.0, ge=0)
    """A row written this recently (on either side) when differences are rechecked is in flight, not drift."""
    auto_repair: list[str] = []
    """Tables (``keyspace.table``, or ``"*"`` for all) whose mismatches every job repairs (``--repair`` and
    the API's ``repair`` ask for it per job)."""
    max_concurrent_jobs: int = Field(default=3, ge=1)
    job_stale_s: float = Field(default=300.0, gt=0)
    """A running job without a heartbeat (one per range) for this long is resumed by a worker."""

    _qualified = field_validator("tables", "auto_repair")(classmethod(lambda cls, v: qualified_tables(v)))


class BackfillSettings(BaseModel):
    """Defaults of ``cdc backfill`` and ``POST /backfill`` (each can be given per job)."""

    ranges: int = Field(default=256, ge=1, le=1_000_000)
    """Token ranges each table is split into (the unit of parallelism and of resuming)."""
    parallel: int = Field(default=4, ge=1, le=64)
    """Ranges read and applied at once."""
    rate: float | None = Field(default=None, gt=0)
    """At most this many rows per second over the whole job (None: as fast as it goes)."""
    page_size: int = Field(default=1000, ge=10, le=100_000)
    batch_rows: int = Field(default=2000, ge=1, le=100_000)
    """Rows per PostgreSQL transaction (a batch ends at a partition boundary: it may hold a few more)."""
    consistency: Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL"] = "LOCAL_QUORUM"
    auto: list[str] = []
    """Tables (``keyspace.table``, or ``"*"`` for all) a worker backfills once it has created their mirror."""
    auto_check_s: float = Field(default=30.0, gt=0)
    """How often a worker looks for such new mirrors."""

    _qualified = field_validator("auto")(classmethod(lambda cls, v: qualified_tables(v)))


class TracingSettings(BaseModel):
    """OpenTelemetry tracing (``app.tracing``); the exporter is configured by the standard ``OTEL_*``
    variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``)."""

    enabled: bool = False
    success_ratio: float = Field(default=0.1, ge=0, le=1)
    """Share of traces without a failed span that are exported (those with one always are)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CDC_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    app_id: str = "cass-cdc-pg"
    data_dir: Path = Path(".cdc-data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "console"
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    cassandra: CassandraSettings = CassandraSettings()
    registry: RegistrySettings = RegistrySettings()
    web: WebSettings = WebSettings()
    sink: SinkSettings = SinkSettings()
    dlq: DlqSettings = DlqSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    backfill: BackfillSettings = BackfillSettings()
    vault: VaultSettings = VaultSettings()
    tracing: TracingSettings = TracingSettings()
    transforms: dict[str, dict[str, Any]] = {}
    """Per-table column rules (masking, dropping, timestamp normalization), e.g. in TOML
    ``[transforms."shop.customers"] email = { mask = "email" }`` (README, Transforms). Shape-checked here,
    checked against each table's schema when the worker starts."""
    transform_hash_key: SecretStr | None = None
    """The HMAC key of ``mask = "hash"`` (at least 16 characters). Changing it changes every hashed value."""

    @field_validator("transforms")
    @classmethod
    def _rules_parse(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        try:
            parse_rules(value)
        except TransformConfigError as error:
            raise ValueError(str(error)) from None
        return value

    _hash_key_is_long = field_validator("transform_hash_key")(long_secret)

    @model_validator(mode="after")
    def _transforms_have_a_key(self) -> Settings:
        if self.transforms and self.transform_hash_key is None:
            rule = (hashing_rules(self.transform_rules) or ["transforms"])[0]
            raise ValueError(
                f"{rule}: transforms need transform_hash_key (env CDC_TRANSFORM_HASH_KEY): it keys "
                'mask = "hash" and seals the original values kept in dead letters'
            )
        return self

    @model_validator(mode="after")
    def _references_have_a_vault(self) -> Settings:
        found = references(self)
        dynamic = [
            key for key, ref in found.items() if ref.startswith("vault-db:") and key != "postgres.password"
        ]
        if dynamic:
            raise ValueError(f"{dynamic[0]}: vault-db: references are for postgres.password only")
        if found and not self.vault.addr:
            raise ValueError(f"{next(iter(found))}: a Vault reference needs vault.addr (env CDC_VAULT__ADDR)")
        return self

    @property
    def transform_rules(self) -> dict[str, dict[str, Rule]]:
        """``transforms``, parsed (:mod:`models.transforms`)."""
        return parse_rules(self.transforms)

    @property
    def hash_key(self) -> bytes:
        return b"" if self.transform_hash_key is None else self.transform_hash_key.get_secret_value().encode()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CDC_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def describe_validation_error(error: ValidationError) -> str:
    """Render a pydantic error as lines naming each offending key the way a user sets it."""
    lines = []
    for item in error.errors():
        if not item["loc"]:  # a check across keys: its message names them
            lines.append(f"invalid configuration: {item['msg'].removeprefix('Value error, ')}")
            continue
        key = ".".join(str(part) for part in item["loc"])
        env = "CDC_" + "__".join(str(part) for part in item["loc"]).upper()
        lines.append(f"invalid configuration {key} (env {env}): {item['msg']}")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Build and validate the settings; raise :class:`ConfigError` naming the bad key."""
    config_file = os.environ.get("CDC_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"invalid configuration CDC_CONFIG_FILE: no such file {config_file}")
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        secrets = read_references(settings, settings.vault)
        if secrets:  # validated again with the values read (e.g. a token's length)
            settings = Settings(**nested(secrets, into=dict(overrides)))
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
    except (VaultUnavailable, VaultRefused) as error:
        raise ConfigError(f"invalid configuration vault (env CDC_VAULT__*): {error}") from None
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()

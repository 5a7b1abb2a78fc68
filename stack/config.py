"""Settings of the local stack: every host, port, directory and tunable, overridable by ``CDC_STACK_*``.

A field ``foo_bar`` is read from the environment variable ``CDC_STACK_FOO_BAR``; e.g. ``CDC_STACK_DIR``
moves all state (data, logs, pid files, the Maven cache) and ``CDC_STACK_PG_PORT`` moves PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "CDC_STACK_"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


@dataclass(frozen=True)
class Settings:
    """All knobs; build with :meth:`from_env`."""

    dir: Path = REPO_ROOT / ".stack"
    cache_dir: Path | None = None
    host: str = "127.0.0.1"
    tls: bool = False
    """TLS mode (``cdc stack up --tls`` or ``CDC_STACK_TLS=1``): PostgreSQL accepts only TLS connections
    authenticated by password (scram-sha-256), Kafka only SASL_SSL with SCRAM-SHA-512 (its controller SSL),
    Cassandra only TLS clients authenticated by password (PasswordAuthenticator, CassandraAuthorizer; the
    worker's role ``cassandra_reader`` may only SELECT), with certificates of the stack's own CA
    (``<dir>/tls``); the Debezium agent speaks TLS to both; OpenBao serves HTTPS with the dev server's own CA
    (``conf/openbao/vault-ca.pem``).
    Use a stack directory of its own: the data directories are initialised in one mode."""
    # PostgreSQL
    pg_port: int = 55432
    pg_user: str = "postgres"
    pg_database: str = "cdc"
    pg_bin: Path = Path("/usr/lib/postgresql/15/bin")
    pg_os_user: str = "postgres"
    pg_password: str = "cdc-stack-postgres"  # noqa: S105 - the local stack's superuser, TLS mode only
    # Kafka (KRaft, one node)
    kafka_port: int = 59092
    kafka_controller_port: int = 59093
    kafka_heap: str = "512m"
    kafka_user: str = "cdc"
    kafka_password: str = "cdc-stack-kafka"  # noqa: S105 - the local stack's SCRAM user, TLS mode only
    kafka_partitions: int = 4
    """Partitions of auto-created topics, i.e. of the agent's change topics (several workers share them)."""
    # Cassandra
    cassandra_port: int = 59042
    cassandra_user: str = "cassandra"
    cassandra_password: str = "cassandra"  # noqa: S105 - Cassandra's default superuser, TLS mode only
    truststore_password: str = "cdc-stack-truststore"  # noqa: S105 - a PKCS12 file of the CA, public data
    cassandra_reader: str = "cdc_reader"
    cassandra_reader_password: str = "cdc-stack-reader"  # noqa: S105 - the worker's role, TLS mode only
    cassandra_storage_port: int = 57000
    cassandra_heap: str = "1G"
    cassandra_cluster: str = "cdc-local"
    cassandra_datacenter: str = "datacenter1"
    commitlog_sync_period_ms: int = 100
    cdc_total_space_mib: int = 4096
    # Debezium Cassandra agent
    debezium_http_port: int = 58000
    debezium_heap: str = "1g"
    topic_prefix: str = "cdc"
    snapshot_mode: str = "never"
    converter: str = "json"
    idx_poll_ms: int = 100
    queue_poll_ms: int = 50
    linger_ms: int = 0
    # Optional services
    apicurio_port: int = 58081
    apicurio_heap: str = "384m"
    openbao_port: int = 58200
    openbao_token: str = "cdc-dev-root"  # noqa: S105 - dev-server root token, local only
    bao: str = "bao"
    prometheus_port: int = 59090
    prometheus: str = "prometheus"
    """The Prometheus server binary (Debian's ``prometheus`` package)."""
    prometheus_targets: str = "127.0.0.1:6066"
    """Workers to scrape (``host:port``, comma-separated) at start; ``stack.services.prometheus.set_targets``
    changes them while it runs."""
    prometheus_interval: str = "5s"
    """Scrape and rule evaluation interval."""
    # Tools and timeouts
    java: str = "java"
    mvn: str = "mvn"
    maven_repo: Path | None = None
    start_timeout: float = 240.0
    stop_timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``CDC_STACK_<FIELD>`` overrides from ``env`` (default: ``os.environ``)."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = source.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f.name, str(f.type), raw)
        settings = cls(**values)
        if "tls" not in values and settings.tls_marker.is_file():  # the stack was started with --tls
            settings = dataclasses.replace(settings, tls=True)
        return settings

    @property
    def tls_marker(self) -> Path:
        return self.dir / "tls" / "enabled"

    @property
    def cache(self) -> Path:
        """Maven-resolved classpaths live here (``<dir>/cache`` unless ``CDC_STACK_CACHE_DIR``)."""
        return self.cache_dir or self.dir / "cache"

    def data_dir(self, service: str) -> Path:
        return self.dir / "data" / service

    def conf_dir(self, service: str) -> Path:
        return self.dir / "conf" / service

    def log_file(self, service: str) -> Path:
        return self.dir / "logs" / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.dir / "run" / f"{service}.pid"

    @property
    def tls_dir(self) -> Path:
        """The private CA and the servers' certificates of the TLS mode."""
        return self.dir / "tls"

    def pg_dsn_of(self, database: str) -> str:
        if not self.tls:
            return f"postgresql://{self.pg_user}@{self.host}:{self.pg_port}/{database}"
        return (
            f"postgresql://{self.pg_user}:{self.pg_password}@{self.host}:{self.pg_port}/{database}"
            f"?sslmode=verify-full&sslrootcert={self.tls_dir / 'ca.pem'}"
        )

    @property
    def pg_dsn(self) -> str:
        return self.pg_dsn_of(self.pg_database)

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    def cassandra_client_kwargs(self, reader: bool = False) -> dict[str, Any]:
        """cassandra-driver ``Cluster`` arguments for this stack's Cassandra (TLS mode: a verifying SSL
        context and the superuser's, or with ``reader`` the worker's role's, credentials)."""
        if not self.tls:
            return {}
        import ssl

        from cassandra.auth import PlainTextAuthProvider

        user, password = (
            (self.cassandra_reader, self.cassandra_reader_password)
            if reader
            else (self.cassandra_user, self.cassandra_password)
        )
        return {
            "ssl_context": ssl.create_default_context(cafile=str(self.tls_dir / "ca.pem")),
            "auth_provider": PlainTextAuthProvider(username=user, password=password),
        }

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """aiokafka's security arguments for this stack's Kafka (SASL_SSL + SCRAM-SHA-512 in TLS mode)."""
        if not self.tls:
            return {}
        import ssl

        return {
            "security_protocol": "SASL_SSL",
            "ssl_context": ssl.create_default_context(cafile=str(self.tls_dir / "ca.pem")),
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": self.kafka_user,
            "sasl_plain_password": self.kafka_password,
        }

    @property
    def registry_url(self) -> str:
        """Confluent-compatible schema registry API of Apicurio."""
        return f"http://{self.host}:{self.apicurio_port}/apis/ccompat/v7"


def _convert(name: str, type_name: str, raw: str) -> Any:
    """Turn an environment string into the field's type (int, float, bool, Path, optional Path or str)."""
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", ""):
                raise ValueError("expected 1/0, true/false or yes/no")
            return raw.lower() in ("1", "true", "yes")
        if type_name.startswith("Path"):
            return Path(raw).expanduser().resolve() if raw else None
    except ValueError as exc:
        from stack.errors import StackError

        raise StackError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from None
    return raw

"""Pure rendering of the service configuration files from ``stack/templates`` (unit-testable)."""

from __future__ import annotations

from pathlib import Path
from string import Template

from stack.config import PACKAGE_DIR, Settings

TEMPLATES = PACKAGE_DIR / "templates"
CASSANDRA_VERSION = "5.0.2"

JSON_CONVERTERS = """\
key.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=false"""

# The agent jar bundles Confluent's AvroConverter; Apicurio serves the Confluent API at /apis/ccompat/v7.
# Experimental: with connector 3.4.1 every cell struct is named "cell_value", so a table whose columns have
# different types fails to serialize (Avro named-type clash) and the agent stops. JSON is the default.
AVRO_CONVERTERS = """\
key.converter=io.confluent.connect.avro.AvroConverter
key.converter.schema.registry.url=$url
value.converter=io.confluent.connect.avro.AvroConverter
value.converter.schema.registry.url=$url"""


def render(name: str, **values: object) -> str:
    """Substitute ``${key}`` placeholders of ``templates/<name>``; a missing key raises KeyError."""
    return Template((TEMPLATES / name).read_text()).substitute({k: str(v) for k, v in values.items()})


def kafka_server_properties(s: Settings, data_dir: Path, tls: tuple[Path, Path] | None = None) -> str:
    """The broker's configuration; with ``tls`` (its PEM keystore and the CA), TLS-only listeners."""
    text = render(
        "kafka-server.properties",
        host=s.host,
        port=s.kafka_port,
        controller_port=s.kafka_controller_port,
        data_dir=data_dir,
        partitions=s.kafka_partitions,
    )
    if tls is None:
        return text
    keystore, ca = tls
    text = text.replace("PLAINTEXT://", "SASL_SSL://")
    text = text.replace("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT", "SASL_SSL:SASL_SSL,CONTROLLER:SSL")
    text = text.replace("inter.broker.listener.name=PLAINTEXT", "inter.broker.listener.name=SASL_SSL")
    return text + render(
        "kafka-tls.properties", keystore=keystore, ca=ca, user=s.kafka_user, password=s.kafka_password
    )


def log4j_properties(log_file: Path) -> str:
    return render("kafka-log4j.properties", log_file=log_file)


def cassandra_yaml(s: Settings, data_dir: Path, keystore: Path | None = None) -> str:
    """The node's configuration; with ``keystore`` (PEM: key then certificate), TLS-only clients
    authenticated by password."""
    text = render(
        "cassandra.yaml",
        cassandra_version=CASSANDRA_VERSION,
        cluster_name=s.cassandra_cluster,
        host=s.host,
        storage_port=s.cassandra_storage_port,
        native_port=s.cassandra_port,
        data_dir=data_dir,
        cdc_total_space=f"{s.cdc_total_space_mib}MiB",
        commitlog_sync_period=f"{s.commitlog_sync_period_ms}ms",
    )
    if keystore is None:
        return text
    text = text.replace("authenticator: AllowAllAuthenticator", "authenticator: PasswordAuthenticator")
    text = text.replace("authorizer: AllowAllAuthorizer", "authorizer: CassandraAuthorizer")
    return text + render("cassandra-tls.yaml", keystore=keystore)


def logback_xml(log_file: Path, root_level: str = "INFO") -> str:
    return render("logback.xml", log_file=log_file, root_level=root_level)


def cdc_raw_dir(cassandra_data: Path) -> Path:
    """Where the rendered cassandra.yaml puts ``cdc_raw_directory``."""
    return cassandra_data / "cdc_raw"


def converters(s: Settings) -> str:
    if s.converter == "avro":
        return Template(AVRO_CONVERTERS).substitute(url=s.registry_url)
    if s.converter != "json":
        raise ValueError(f"CDC_STACK_CONVERTER must be json or avro, not {s.converter!r}")
    return JSON_CONVERTERS


def debezium_properties(s: Settings, cassandra_yaml_path: Path, driver_conf: Path, data_dir: Path) -> str:
    return render(
        "debezium.properties",
        connector_name=s.cassandra_cluster,
        cassandra_yaml=cassandra_yaml_path,
        driver_conf=driver_conf,
        cluster_name=s.cassandra_cluster,
        topic_prefix=s.topic_prefix,
        http_port=s.debezium_http_port,
        offset_dir=data_dir / "offsets",
        relocation_dir=data_dir / "relocation",
        idx_poll_ms=s.idx_poll_ms,
        queue_poll_ms=s.queue_poll_ms,
        snapshot_mode=s.snapshot_mode,
        snapshot_scan_ms=5000,
        schema_refresh_ms=5000,
        bootstrap=s.kafka_bootstrap,
        linger_ms=s.linger_ms,
        converters=converters(s),
    ) + (
        render(
            "debezium-tls.properties",
            ca=s.tls_dir / "ca.pem",
            user=s.kafka_user,
            password=s.kafka_password,
        )
        if s.tls
        else ""
    )


def driver_conf(s: Settings, truststore: Path | None = None) -> str:
    """The agent's Java driver configuration; with ``truststore`` (TLS mode) TLS with host-name checks and
    the superuser's credentials (the agent reads schema and, for snapshots, rows)."""
    text = render(
        "debezium-driver.conf",
        host=s.host,
        native_port=s.cassandra_port,
        datacenter=s.cassandra_datacenter,
    )
    if truststore is None:
        return text
    return text + render(
        "debezium-driver-tls.conf",
        truststore=truststore,
        truststore_password=s.truststore_password,
        user=s.cassandra_user,
        password=s.cassandra_password,
    )

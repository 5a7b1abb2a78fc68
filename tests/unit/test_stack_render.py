"""stack.render: the rendered configs bind 127.0.0.1, enable CDC and carry the agent's durability settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import render
from stack.config import Settings

DATA = Path("/state/data/x")


def properties(text: str) -> dict[str, str]:
    """``key=value`` lines (comments and blanks skipped); a repeated key fails the test."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep == "=", f"not a property line: {line!r}"
        assert key not in out, f"duplicate property {key}"
        out[key] = value
    return out


def yaml_scalars(text: str) -> dict[str, str]:
    """Top-level ``key: value`` scalars of cassandra.yaml (nested blocks skipped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0] in " #-":
            continue
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


@pytest.fixture
def s() -> Settings:
    return Settings()


def test_kafka_server_properties_bind_loopback(s: Settings) -> None:
    p = properties(render.kafka_server_properties(s, DATA))
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:59092,CONTROLLER://127.0.0.1:59093"
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:59092"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:59093"
    assert p["log.dirs"] == "/state/data/x"
    assert p["process.roles"] == "broker,controller"
    assert p["auto.create.topics.enable"] == "true"
    assert p["num.partitions"] == "4"  # change topics can be shared by several workers
    assert (
        "log.message.timestamp.type" not in p
    )  # broker default CreateTime: tests set LogAppendTime per topic


def test_kafka_follows_settings() -> None:
    s = Settings(host="127.0.0.2", kafka_port=1111, kafka_controller_port=2222, kafka_partitions=2)
    p = properties(render.kafka_server_properties(s, DATA))
    assert p["listeners"] == "PLAINTEXT://127.0.0.2:1111,CONTROLLER://127.0.0.2:2222"
    assert p["num.partitions"] == "2"


CASSANDRA_YAML = {
    "listen_address": "127.0.0.1",
    "rpc_address": "127.0.0.1",
    "native_transport_port": "59042",
    "storage_port": "57000",
    "cdc_enabled": "true",
    "cdc_raw_directory": "/state/data/x/cdc_raw",
    "cdc_total_space": "4096MiB",
    "commitlog_sync": "periodic",
    "commitlog_sync_period": "100ms",
    "cluster_name": "cdc-local",
}


@pytest.mark.parametrize(("key", "value"), CASSANDRA_YAML.items())
def test_cassandra_yaml_scalars(s: Settings, key: str, value: str) -> None:
    assert yaml_scalars(render.cassandra_yaml(s, DATA))[key] == value


def test_cassandra_yaml(s: Settings) -> None:
    text = render.cassandra_yaml(s, DATA)
    assert '- seeds: "127.0.0.1:57000"' in text
    assert render.cdc_raw_dir(DATA) == Path(yaml_scalars(text)["cdc_raw_directory"])
    assert "$" not in text


def test_driver_conf(s: Settings) -> None:
    text = render.driver_conf(s)
    assert 'contact-points = [ "127.0.0.1:59042" ]' in text
    assert 'load-balancing-policy.local-datacenter = "datacenter1"' in text


def agent(s: Settings) -> dict[str, str]:
    text = render.debezium_properties(s, Path("/c/cassandra.yaml"), Path("/c/application.conf"), DATA)
    assert "$" not in text
    return properties(text)


def test_debezium_properties_durable_producer(s: Settings) -> None:
    p = agent(s)
    assert {k: p[k] for k in p if k.startswith("kafka.producer.")} == {
        "kafka.producer.bootstrap.servers": "127.0.0.1:59092",
        "kafka.producer.acks": "all",
        "kafka.producer.enable.idempotence": "true",
        "kafka.producer.retries": "2147483647",
        "kafka.producer.max.in.flight.requests.per.connection": "1",
        "kafka.producer.linger.ms": "0",
        "kafka.producer.delivery.timeout.ms": "120000",
    }


AGENT_PROPERTIES = {
    "commit.log.real.time.processing.enabled": "true",
    "commit.log.marked.complete.poll.interval.ms": "100",
    "cdc.dir.poll.interval.ms": "100",
    "poll.interval.ms": "50",
    "decimal.handling.mode": "string",
    "varint.handling.mode": "string",
    "snapshot.mode": "never",
    "topic.prefix": "cdc",
    "http.port": "58000",
    "cassandra.config": "/c/cassandra.yaml",
    "cassandra.driver.config.file": "/c/application.conf",
    "offset.backing.store.dir": "/state/data/x/offsets",
    "commit.log.relocation.dir": "/state/data/x/relocation",
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "false",
    "value.converter.schemas.enable": "false",
}


@pytest.mark.parametrize(("key", "value"), AGENT_PROPERTIES.items())
def test_debezium_properties_real_time_and_modes(s: Settings, key: str, value: str) -> None:
    assert agent(s)[key] == value


def test_debezium_properties_follow_settings() -> None:
    s = Settings(topic_prefix="t9", idx_poll_ms=7, queue_poll_ms=3, linger_ms=5, snapshot_mode="initial")
    p = agent(s)
    assert (p["topic.prefix"], p["cdc.dir.poll.interval.ms"], p["poll.interval.ms"]) == ("t9", "7", "3")
    assert (p["kafka.producer.linger.ms"], p["snapshot.mode"]) == ("5", "initial")


def test_avro_converters_point_at_registry() -> None:
    p = agent(Settings(converter="avro", apicurio_port=1234))
    assert p["value.converter"] == "io.confluent.connect.avro.AvroConverter"
    assert p["value.converter.schema.registry.url"] == "http://127.0.0.1:1234/apis/ccompat/v7"
    assert p["key.converter.schema.registry.url"] == "http://127.0.0.1:1234/apis/ccompat/v7"


def test_unknown_converter_is_rejected() -> None:
    with pytest.raises(ValueError, match="CDC_STACK_CONVERTER must be json or avro, not 'xml'"):
        render.converters(Settings(converter="xml"))


def test_render_missing_placeholder_raises() -> None:
    with pytest.raises(KeyError, match="log_file"):
        render.render("logback.xml", root_level="INFO")


def test_logback_and_log4j_paths() -> None:
    assert "<file>/l/agent.log</file>" in render.logback_xml(Path("/l/agent.log"))
    assert '<root level="DEBUG">' in render.logback_xml(Path("/l/a.log"), "DEBUG")
    assert properties(render.log4j_properties(Path("/l/k.log")))["log4j.appender.file.File"] == "/l/k.log"

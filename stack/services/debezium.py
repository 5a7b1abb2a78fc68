"""The Debezium Cassandra 5 agent: a standalone JVM beside the node that tails cdc_raw into Kafka."""

from __future__ import annotations

import subprocess
from pathlib import Path

from stack import jvm, maven, readiness, render
from stack.config import Settings
from stack.errors import StackError
from stack.process import Launch
from stack.services.base import Service, write
from stack.services.cassandra import cdc_raw, yaml_path

MAIN = "io.debezium.connector.cassandra.CassandraConnectorTask"


def dir_size(path: Path) -> int:
    """Bytes under ``path`` (cdc_raw usage: writes to CDC tables are rejected when it is full)."""
    total = 0
    for f in path.glob("*"):
        try:
            total += f.stat().st_size
        except OSError:
            continue
    return total


class Debezium(Service):
    name = "debezium"

    def deps(self, s: Settings) -> tuple[str, ...]:
        base = ("cassandra", "kafka")
        return (*base, "apicurio") if s.converter == "avro" else base

    def ports(self, s: Settings) -> list[int]:
        return [s.debezium_http_port]

    def resolve(self, s: Settings) -> None:
        jvm.java_bin(s)
        render.converters(s)
        maven.resolve(s, self.name)

    def truststore(self, s: Settings) -> Path | None:
        """TLS mode: the stack's CA as a PKCS12 truststore (the Java driver reads no PEM), made by keytool."""
        if not s.tls:
            return None
        from stack import certs

        ca = certs.server_cert(s.tls_dir, "cassandra", s.host).ca
        store = self.conf_dir(s) / "truststore.p12"
        if not store.is_file():
            store.parent.mkdir(parents=True, exist_ok=True)
            keytool = str(Path(jvm.java_bin(s)).resolve().parent / "keytool")
            argv = [keytool, "-importcert", "-noprompt", "-alias", "cdc-stack-ca", "-file", str(ca)]
            argv += ["-keystore", str(store), "-storetype", "PKCS12", "-storepass", s.truststore_password]
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode != 0:
                raise StackError("debezium: keytool failed", (proc.stdout + proc.stderr).splitlines()[-10:])
        return store

    def prepare(self, s: Settings) -> Launch:
        data, conf = self.data_dir(s), self.conf_dir(s)
        for sub in ("offsets", "relocation"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        driver = write(conf / "application.conf", render.driver_conf(s, self.truststore(s)))
        props = write(conf / "agent.properties", render.debezium_properties(s, yaml_path(s), driver, data))
        logback = write(conf / "logback.xml", render.logback_xml(s.log_file(self.name)))
        argv = [
            jvm.java_bin(s),
            *jvm.heap(s.debezium_heap),
            "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
            *jvm.JPMS_FLAGS,
            f"-Dcassandra.storagedir={s.data_dir('cassandra')}",
            f"-Dlogback.configurationFile={logback}",
            "-cp",
            jvm.classpath(maven.lib_dir(s, self.name)),
            MAIN,
            str(props),
        ]
        return Launch(argv=argv, cwd=data)

    def health_url(self, s: Settings) -> str:
        return f"http://{s.host}:{s.debezium_http_port}/health"

    def probe(self, s: Settings) -> bool:
        return readiness.http_ok(self.health_url(s))

    def endpoint(self, s: Settings) -> dict[str, object]:
        raw = cdc_raw(s)
        return {
            "topic_prefix": s.topic_prefix,
            "topic_pattern": f"{s.topic_prefix}.<keyspace>.<table>",
            "converter": s.converter,
            "snapshot_mode": s.snapshot_mode,
            "health": self.health_url(s),
            "cdc_raw": str(raw),
            "cdc_raw_bytes": dir_size(raw),
            "cdc_total_space_mib": s.cdc_total_space_mib,
        }

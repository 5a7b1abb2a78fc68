"""Apache Cassandra 5.0 (the cassandra-all version the Debezium agent bundles), one node, CDC enabled."""

from __future__ import annotations

from pathlib import Path

from cassandra.metadata import protect_name

from stack import jvm, maven, readiness, render
from stack.config import Settings
from stack.process import Launch
from stack.services.base import Service, write

MAIN = "org.apache.cassandra.service.CassandraDaemon"
SUBDIRS = ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "triggers")
# Single fresh node: nothing to wait for in gossip or the ring.
FAST_START = (
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.ring_delay_ms=1000",
    "-Dcassandra.superuser_setup_delay_ms=0",
)
GC = ("-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1", "-XX:MaxGCPauseMillis=300")


def yaml_path(s: Settings) -> Path:
    """The node's cassandra.yaml, also read by the Debezium agent."""
    return s.conf_dir("cassandra") / "cassandra.yaml"


def cdc_raw(s: Settings) -> Path:
    return render.cdc_raw_dir(s.data_dir("cassandra"))


class Cassandra(Service):
    name = "cassandra"

    def ports(self, s: Settings) -> list[int]:
        return [s.cassandra_port, s.cassandra_storage_port]

    def resolve(self, s: Settings) -> None:
        jvm.java_bin(s)
        maven.resolve(s, self.name)

    def prepare(self, s: Settings) -> Launch:
        data, conf = self.data_dir(s), self.conf_dir(s)
        for sub in SUBDIRS:
            (data / sub).mkdir(parents=True, exist_ok=True)
        yaml = write(yaml_path(s), render.cassandra_yaml(s, data, self.keystore(s)))
        logback = write(conf / "logback.xml", render.logback_xml(s.log_file(self.name)))
        lib = maven.lib_dir(s, self.name)
        argv = [
            jvm.java_bin(s),
            *jvm.heap(s.cassandra_heap),
            "-Xss256k",
            *GC,
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.net.preferIPv4Stack=true",
            *jvm.JPMS_FLAGS,
            f"-javaagent:{jvm.find_jar(lib, 'jamm-')}",
            f"-Dcassandra.config={yaml.as_uri()}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.storagedir={data}",
            f"-Dcassandra.triggers_dir={data / 'triggers'}",
            f"-Dcassandra.logdir={s.log_file(self.name).parent}",
            f"-Dlogback.configurationFile={logback}",
            *FAST_START,
            "-cp",
            jvm.classpath(lib),
            MAIN,
        ]
        return Launch(argv=argv, cwd=data)

    def keystore(self, s: Settings) -> Path | None:
        """TLS mode: the node's PEM keystore (key then certificate)."""
        if not s.tls:
            return None
        from stack import certs

        return certs.pem_keystore(
            certs.server_cert(s.tls_dir, "cassandra", s.host), self.conf_dir(s) / "keystore.pem"
        )

    def probe(self, s: Settings) -> bool:
        return readiness.cassandra(s.host, s.cassandra_port, **s.cassandra_client_kwargs())

    def after_ready(self, s: Settings) -> None:
        """TLS mode: the worker's role, allowed to SELECT (schema and read-back) and nothing else."""
        if not s.tls:
            return
        from cassandra.cluster import Cluster

        cluster = Cluster([s.host], port=s.cassandra_port, **s.cassandra_client_kwargs())
        try:
            session = cluster.connect()
            role = protect_name(s.cassandra_reader)
            create = f"CREATE ROLE IF NOT EXISTS {role} WITH LOGIN = true AND PASSWORD = %s"
            session.execute(create, (s.cassandra_reader_password,))
            session.execute(f"GRANT SELECT ON ALL KEYSPACES TO {role}")
        finally:
            cluster.shutdown()

    def endpoint(self, s: Settings) -> dict[str, object]:
        return {
            "host": s.host,
            "port": s.cassandra_port,
            "datacenter": s.cassandra_datacenter,
            "config": str(yaml_path(s)),
            "cdc_raw": str(cdc_raw(s)),
        }

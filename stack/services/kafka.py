"""Apache Kafka 3.9 in KRaft mode, one node acting as broker and controller."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from stack import jvm, maven, readiness, render
from stack.config import Settings
from stack.errors import StackError
from stack.process import Launch
from stack.services.base import Service, write

MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, never starting with "-" (the
    storage tool would read it as an option: "argument --cluster-id/-t: expected one argument"; Kafka's own
    ``Uuid.randomUuid`` skips those for the same reason; one id in 64 did)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka(Service):
    name = "kafka"

    def ports(self, s: Settings) -> list[int]:
        return [s.kafka_port, s.kafka_controller_port]

    def resolve(self, s: Settings) -> None:
        jvm.java_bin(s)
        maven.resolve(s, self.name)

    def prepare(self, s: Settings) -> Launch:
        data, conf = self.data_dir(s), self.conf_dir(s)
        data.mkdir(parents=True, exist_ok=True)
        server = write(conf / "server.properties", render.kafka_server_properties(s, data, self.tls_files(s)))
        log4j = write(conf / "log4j.properties", render.log4j_properties(s.log_file(self.name)))
        base = self.java_base(s, log4j)
        if not (data / "meta.properties").is_file():
            self.format_storage(base, server, s)
        argv = [*base, *jvm.heap(s.kafka_heap), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", MAIN, str(server)]
        return Launch(argv=argv, cwd=data)

    def java_base(self, s: Settings, log4j: Path) -> list[str]:
        lib = maven.lib_dir(s, self.name)
        return [
            jvm.java_bin(s),
            "-Djava.awt.headless=true",
            "-XX:+ExitOnOutOfMemoryError",
            f"-Dlog4j.configuration={log4j.as_uri()}",
            "-cp",
            jvm.classpath(lib),
        ]

    def tls_files(self, s: Settings) -> tuple[Path, Path] | None:
        """TLS mode: a PEM keystore (key then certificate, one file) and the CA."""
        if not s.tls:
            return None
        from stack import certs

        issued = certs.server_cert(s.tls_dir, "kafka", s.host)
        return certs.pem_keystore(issued, self.conf_dir(s) / "keystore.pem"), issued.ca

    def format_storage(self, base: list[str], server: Path, s: Settings) -> None:
        argv = [*base, "-Xmx256m", STORAGE_TOOL, "format", "-t", new_cluster_id(), "-c", str(server)]
        if s.tls:  # the SCRAM user every client (and the broker itself) authenticates as
            argv += ["--add-scram", f"SCRAM-SHA-512=[name={s.kafka_user},password={s.kafka_password}]"]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StackError("kafka: storage format failed", (proc.stdout + proc.stderr).splitlines()[-30:])

    def probe(self, s: Settings) -> bool:
        return readiness.kafka(s.kafka_bootstrap, auth=s.kafka_client_kwargs())

    def endpoint(self, s: Settings) -> dict[str, object]:
        return {"bootstrap": s.kafka_bootstrap, "host": s.host, "port": s.kafka_port}

"""Apicurio Registry (optional): in-memory schema registry with the Confluent API at /apis/ccompat/v7."""

from __future__ import annotations

from pathlib import Path

from stack import jvm, maven, readiness
from stack.config import Settings
from stack.errors import StackError
from stack.process import Launch
from stack.services.base import Service


def quarkus_jar(lib: Path) -> Path:
    """The launcher: ``quarkus-run.jar`` (fast-jar, 3.x) or ``*-runner.jar`` (legacy-jar, 2.x)."""
    jars = sorted(lib.rglob("quarkus-run.jar")) or sorted(lib.rglob("*-runner.jar"))
    if not jars:
        raise StackError(f"apicurio: no quarkus-run.jar under {lib}: delete it and run again to re-resolve")
    return jars[0]


class Apicurio(Service):
    name = "apicurio"
    optional = True

    def ports(self, s: Settings) -> list[int]:
        return [s.apicurio_port]

    def resolve(self, s: Settings) -> None:
        jvm.java_bin(s)
        maven.resolve(s, self.name)

    def prepare(self, s: Settings) -> Launch:
        data = self.data_dir(s)
        data.mkdir(parents=True, exist_ok=True)
        jar = quarkus_jar(maven.lib_dir(s, self.name))
        argv = [
            jvm.java_bin(s),
            *jvm.heap(s.apicurio_heap),
            "-XX:+ExitOnOutOfMemoryError",
            f"-Dquarkus.http.host={s.host}",
            f"-Dquarkus.http.port={s.apicurio_port}",
            "-Dquarkus.management.enabled=false",
            "-Dquarkus.log.console.color=false",
            f"-Djava.io.tmpdir={data}",
            "-jar",
            str(jar),
        ]
        return Launch(argv=argv, cwd=jar.parent)

    def probe(self, s: Settings) -> bool:
        return readiness.http_ok(f"{s.registry_url}/subjects")

    def endpoint(self, s: Settings) -> dict[str, object]:
        return {"url": f"http://{s.host}:{s.apicurio_port}", "ccompat_url": s.registry_url}

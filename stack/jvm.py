"""Java launch helpers shared by the JVM services."""

from __future__ import annotations

import shutil
from pathlib import Path

from stack.config import Settings
from stack.errors import StackError

# Cassandra 5.0's conf/jvm17-server.options (JPMS section) plus two exports the Debezium agent needs.
JPMS_FLAGS: tuple[str, ...] = (
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
)


def java_bin(settings: Settings) -> str:
    """The java executable, or a clear error when there is none."""
    found = shutil.which(settings.java)
    if found is None:
        raise StackError(
            f"Java not found ({settings.java!r}): install a JDK 17 "
            "(apt-get install -y openjdk-17-jdk-headless)"
        )
    return found


def heap(size: str) -> list[str]:
    return [f"-Xms{size}", f"-Xmx{size}"]


def classpath(lib: Path) -> str:
    return f"{lib}/*"


def find_jar(lib: Path, prefix: str) -> Path:
    """The one jar in ``lib`` whose name starts with ``prefix`` (e.g. jamm for Cassandra's javaagent)."""
    matches = sorted(lib.glob(f"{prefix}*.jar"))
    if not matches:
        raise StackError(f"no {prefix}*.jar in {lib}: delete {lib} and run again to re-resolve")
    return matches[0]

"""Resolve a service's JVM classpath from its wrapper POM (``stack/maven/<service>/pom.xml``) into the cache.

Resolution runs ``mvn dependency:copy-dependencies`` (or ``unpack-dependencies`` for distributions) once;
a marker file holding the POM's SHA-256 makes later runs skip Maven entirely.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from stack.config import PACKAGE_DIR, Settings
from stack.errors import StackError

MARKER = ".resolved"
UNPACKED = frozenset({"apicurio"})


def pom_path(service: str) -> Path:
    return PACKAGE_DIR / "maven" / service / "pom.xml"


def pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def lib_dir(settings: Settings, service: str) -> Path:
    return settings.cache / "lib" / service


def is_resolved(settings: Settings, service: str) -> bool:
    marker = lib_dir(settings, service) / MARKER
    return marker.is_file() and marker.read_text().strip() == pom_digest(pom_path(service))


def mvn_command(settings: Settings, service: str, out_dir: Path) -> list[str]:
    """The Maven invocation that fills ``out_dir`` with the service's jars (pure)."""
    goal = "unpack-dependencies" if service in UNPACKED else "copy-dependencies"
    cmd = [
        settings.mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(pom_path(service)),
        f"dependency:{goal}",
    ]
    # Unpack markers default to the POM's target/ (inside the repo); keep them with the output instead.
    cmd += [f"-DoutputDirectory={out_dir}", f"-DmarkersDirectory={out_dir / '.markers'}"]
    if settings.maven_repo:
        cmd.append(f"-Dmaven.repo.local={settings.maven_repo}")
    return cmd


def resolve(settings: Settings, service: str) -> Path:
    """Return the service's lib dir, running Maven first unless the marker matches the POM."""
    out = lib_dir(settings, service)
    if is_resolved(settings, service):
        return out
    if shutil.which(settings.mvn) is None:
        raise StackError(f"Maven not found ({settings.mvn!r}): install it (apt-get install -y maven)")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    proc = subprocess.run(mvn_command(settings, service, out), capture_output=True, text=True)
    if proc.returncode != 0:
        errors = mvn_errors(proc.stdout + proc.stderr)
        raise StackError(f"cannot resolve the {service} classpath with Maven", errors)
    (out / MARKER).write_text(pom_digest(pom_path(service)) + "\n")
    return out


BOILERPLATE = ("To see the full stack trace", "Re-run Maven", "For more information", "[Help 1] http")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def mvn_errors(output: str, limit: int = 15) -> list[str]:
    """The meaningful ``[ERROR]`` lines of Maven's output, or its last lines when it printed none."""
    clean = [ANSI.sub("", ln).strip() for ln in output.splitlines()]
    lines = [ln for ln in clean if ln.startswith("[ERROR] ") and not any(b in ln for b in BOILERPLATE)]
    return lines[:limit] if lines else [ln for ln in clean if ln][-limit:]

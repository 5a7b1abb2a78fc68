"""Detached processes with pid files; only processes this tool started are ever signalled.

Each spawned process carries ``CDC_STACK_OWNER=<service>@<state dir>`` in its environment; a pid from
a pid file is trusted only while ``/proc/<pid>/environ`` still shows that tag (a recycled pid is never
signalled).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stack.errors import StackError

OWNER_VAR = "CDC_STACK_OWNER"


@dataclass(frozen=True)
class Launch:
    """How to start one service process."""

    argv: list[str]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None


def owner_tag(service: str, state_dir: Path) -> str:
    return f"{service}@{state_dir}"


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def has_tag(pid: int, tag: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{OWNER_VAR}={tag}".encode() in environ


TAG_CHECKS = 5
"""``/proc/<pid>/environ`` can read empty while a process execs (the java launcher may exec itself again at
start-up): a live process without the tag is asked again a few times, 50 ms apart, before it counts as not
ours."""


def owned_pid(pid_file: Path, tag: str) -> int | None:
    """The live pid recorded in ``pid_file`` if it is still our process; stale files are removed.

    Seen in CI: during Kafka's restart its pid file vanished and the running broker was reported as "exited
    during startup"; a single read missing the tag is the likely cause (inferred, not observed)."""
    pid = read_pid(pid_file)
    if pid is not None and is_alive(pid):
        for attempt in range(TAG_CHECKS):
            if has_tag(pid, tag):
                return pid
            if attempt + 1 < TAG_CHECKS and is_alive(pid):
                time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return None


def spawn(launch: Launch, log_file: Path, pid_file: Path, tag: str) -> int:
    """Start ``launch`` in its own session (it outlives the CLI), output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **launch.env, OWNER_VAR: tag}
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=launch.user,
            group=launch.user,
            extra_groups=[] if launch.user else None,
        )
    partial = pid_file.with_suffix(".tmp")
    partial.write_text(f"{proc.pid}\n")
    partial.replace(pid_file)  # a reader never sees it half written
    return proc.pid


def stop(pid: int, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
    """Send ``sig``; SIGKILL after ``timeout`` seconds. Returns True when it had to kill."""
    _signal(pid, sig)
    if _wait_gone(pid, timeout):
        return False
    _signal(pid, signal.SIGKILL)
    _wait_gone(pid, 10.0)
    return True


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return not is_alive(pid)


def _reap(pid: int) -> None:
    """Collect our own child (when ``up`` and ``down`` run in one interpreter, e.g. tests)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_ports_free(service: str, host: str, ports: Sequence[int]) -> None:
    for port in ports:
        if port_open(host, port):
            raise StackError(
                f"{service}: port {host}:{port} is already in use by a process this tool did not start "
                f"(stop it or set the matching CDC_STACK_*_PORT)"
            )


def tail(path: Path, lines: int = 30) -> list[str]:
    """The last ``lines`` lines of a text file (empty when missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:] if lines > 0 else []

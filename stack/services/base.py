"""What every local service provides to the controller."""

from __future__ import annotations

import signal
from pathlib import Path

from stack.config import Settings
from stack.process import Launch


class Service:
    """One local service; subclasses override what differs. Instances are stateless."""

    name: str = ""
    stop_signal: int = signal.SIGTERM
    optional: bool = False

    def deps(self, s: Settings) -> tuple[str, ...]:
        """Services that must be ready before this one starts."""
        return ()

    def ports(self, s: Settings) -> list[int]:
        """Ports it binds; the first is the main one."""
        raise NotImplementedError

    def resolve(self, s: Settings) -> None:
        """Fetch what it needs to run (Maven classpath, binary check); may be slow the first time."""

    def prepare(self, s: Settings) -> Launch:
        """Create data dirs, render configs, initialise storage; return how to launch it."""
        raise NotImplementedError

    def probe(self, s: Settings) -> bool:
        """One real readiness check (may raise: counts as not ready)."""
        raise NotImplementedError

    def after_ready(self, s: Settings) -> None:
        """One-time set-up once ready (e.g. create the database)."""

    def endpoint(self, s: Settings) -> dict[str, object]:
        """Connection facts for ``status --json``."""
        return {}

    def data_dir(self, s: Settings) -> Path:
        return s.data_dir(self.name)

    def conf_dir(self, s: Settings) -> Path:
        return s.conf_dir(self.name)


def write(path: Path, text: str) -> Path:
    """Write a rendered config file (creating its folder) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

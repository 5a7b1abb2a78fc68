"""Bring services up (dependencies first, reusing healthy ones), take them down, report status."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from stack import process, readiness
from stack.config import Settings
from stack.errors import StackError
from stack.services import SERVICES, Service

Echo = Callable[[str], None]


def lookup(name: str) -> Service:
    try:
        return SERVICES[name]
    except KeyError:
        raise StackError(f"unknown service {name!r} (known: {', '.join(SERVICES)})") from None


def with_deps(names: Iterable[str], s: Settings) -> list[Service]:
    """The named services plus their dependencies, dependencies first (registry order otherwise)."""
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in wanted:
            wanted.add(name)
            for dep in lookup(name).deps(s):
                add(dep)

    for name in names:
        add(name)
    return _topo([SERVICES[n] for n in SERVICES if n in wanted], s)


def _topo(services: list[Service], s: Settings) -> list[Service]:
    """Order ``services`` so each comes after its dependencies among them."""
    names = {svc.name for svc in services}
    done: list[Service] = []
    pending = list(services)
    while pending:
        placed = {x.name for x in done}
        ready = [svc for svc in pending if all(d in placed for d in svc.deps(s) if d in names)]
        if not ready:
            raise StackError("dependency cycle among " + ", ".join(x.name for x in pending))
        done.extend(ready)
        pending = [svc for svc in pending if svc not in ready]
    return done


def with_dependents(names: Iterable[str], s: Settings) -> list[Service]:
    """The named services plus everything that depends on them, dependents first (stop order)."""
    chosen = {lookup(n).name for n in names}
    changed = True
    while changed:
        extra = {svc.name for svc in SERVICES.values() if chosen & set(svc.deps(s))} - chosen
        chosen |= extra
        changed = bool(extra)
    return list(reversed(_topo([SERVICES[n] for n in SERVICES if n in chosen], s)))


def pid_of(svc: Service, s: Settings) -> int | None:
    return process.owned_pid(s.pid_file(svc.name), process.owner_tag(svc.name, s.dir))


class Starter:
    """Starts services in order and waits for each one's readiness exactly once."""

    def __init__(self, s: Settings, echo: Echo) -> None:
        self.s, self.echo = s, echo
        self.ready: set[str] = set()
        self.started: dict[str, float] = {}
        self.reused: set[str] = set()

    def run(self, services: list[Service]) -> None:
        for svc in services:
            svc.resolve(self.s)
        for svc in services:
            for dep in svc.deps(self.s):
                self.wait(SERVICES[dep])
            self.launch(svc)
        for svc in services:
            self.wait(svc)

    def launch(self, svc: Service) -> None:
        s = self.s
        pid = pid_of(svc, s)
        if pid is not None:
            self.reused.add(svc.name)
            self.started[svc.name] = time.monotonic()
            return
        process.ensure_ports_free(svc.name, s.host, svc.ports(s))
        launch = svc.prepare(s)
        tag = process.owner_tag(svc.name, s.dir)
        self.started[svc.name] = time.monotonic()
        pid = process.spawn(launch, s.log_file(svc.name), s.pid_file(svc.name), tag)
        self.echo(f"{svc.name}: starting (pid {pid}), log {s.log_file(svc.name)}")

    def wait(self, svc: Service) -> None:
        if svc.name in self.ready:
            return
        s = self.s
        log = s.log_file(svc.name)
        readiness.wait_until(
            lambda: svc.probe(s),
            what=svc.name,
            timeout=s.start_timeout,
            alive=lambda: pid_of(svc, s) is not None,
            on_fail=lambda: [f"--- last lines of {log} ---", *process.tail(log, 30)],
        )
        svc.after_ready(s)
        self.ready.add(svc.name)
        took = time.monotonic() - self.started.get(svc.name, time.monotonic())
        how = "already running" if svc.name in self.reused else f"ready in {took:.1f}s"
        self.echo(f"{svc.name}: {how} (pid {pid_of(svc, s)}) {summary(svc, s)}")


def summary(svc: Service, s: Settings) -> str:
    ep = svc.endpoint(s)
    for key in ("dsn", "bootstrap", "url", "addr", "health"):
        if key in ep:
            return str(ep[key])
    return f"{s.host}:{svc.ports(s)[0]}"


def up(names: list[str], s: Settings, echo: Echo) -> None:
    Starter(s, echo).run(with_deps(names, s))


def down(names: list[str], s: Settings, echo: Echo) -> None:
    for svc in with_dependents(names or list(SERVICES), s):
        _stop(svc, s, echo)


def _stop(svc: Service, s: Settings, echo: Echo) -> None:
    pid = pid_of(svc, s)
    if pid is None:
        return
    echo(f"{svc.name}: stopping (pid {pid})")
    killed = process.stop(pid, svc.stop_signal, s.stop_timeout)
    s.pid_file(svc.name).unlink(missing_ok=True)
    echo(f"{svc.name}: {'killed after timeout' if killed else 'stopped'}")


def finish(name: str, s: Settings) -> None:
    """A service's set-up once it answers (e.g. PostgreSQL's CREATE DATABASE), for one that was started but
    not awaited because another service failed first; idempotent."""
    lookup(name).after_ready(s)


def stop(names: list[str], s: Settings, echo: Echo) -> None:
    """Stop exactly ``names`` (what depends on them keeps running, e.g. to see it ride out an outage)."""
    for name in names:
        _stop(lookup(name), s, echo)


def restart(names: list[str], s: Settings, echo: Echo) -> None:
    """Stop exactly ``names`` (what depends on them keeps running) and start them again."""
    stop(names, s, echo)
    up(names, s, echo)


def service_status(svc: Service, s: Settings) -> dict[str, Any]:
    """One service's row of ``status``: pid, running, healthy (a real probe), endpoint facts."""
    pid = pid_of(svc, s)
    healthy = pid is not None and readiness.safe(lambda: svc.probe(s))
    return {
        "name": svc.name,
        "port": svc.ports(s)[0],
        "pid": pid,
        "running": pid is not None,
        "healthy": healthy,
        "optional": svc.optional,
        "log": str(s.log_file(svc.name)),
        **svc.endpoint(s),
    }


def status(s: Settings) -> dict[str, Any]:
    services = {svc.name: service_status(svc, s) for svc in SERVICES.values()}
    return {"state_dir": str(s.dir), "host": s.host, "topic_prefix": s.topic_prefix, "services": services}

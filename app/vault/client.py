"""Logging in to Vault (token, AppRole, Kubernetes) and reading secrets over hvac; errors typed.

Every call goes through :meth:`VaultClient.call`: a token that expired or was revoked is replaced by logging
in again once (AppRole and Kubernetes); Vault down, sealed or unreachable raises :class:`VaultUnavailable`
(transient: retried, the stream paused), a refusal :class:`VaultRefused` (systemic). Messages never hold a
secret: hvac's carry Vault's error text, which names paths, not values.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hvac
import requests
from hvac import exceptions as vault_errors
from pydantic import SecretStr

from app.sink.failures import SystemicFault
from app.vault.config import VaultSettings
from app.vault.refs import KvRef

T = TypeVar("T")

_DOWN = (
    vault_errors.VaultDown,
    vault_errors.InternalServerError,
    vault_errors.BadGateway,
    vault_errors.RateLimitExceeded,
    requests.ConnectionError,
    requests.Timeout,
)


class VaultUnavailable(ConnectionError):
    """Vault cannot be reached or cannot answer now (down, sealed, overloaded)."""

    component = "vault"


class VaultRefused(SystemicFault):
    """Vault answered but refused (permission denied, no such secret, bad role)."""

    component = "vault"


def login(client: hvac.Client, settings: VaultSettings) -> None:
    """Authenticate ``client`` with the configured method (the token method needs no call)."""
    if settings.auth == "token":
        token = settings.token.get_secret_value() if settings.token else os.environ.get("VAULT_TOKEN")
        if not token:
            raise VaultRefused("vault.token: no token configured (nor env VAULT_TOKEN)")
        client.token = token
    elif settings.auth == "approle":
        secret_id = settings.secret_id.get_secret_value() if settings.secret_id else ""
        client.auth.approle.login(
            role_id=settings.role_id, secret_id=secret_id, mount_point=settings.auth_mount or "approle"
        )
    else:
        jwt = Path(settings.kubernetes_jwt_file).read_text().strip()
        client.auth.kubernetes.login(
            role=settings.kubernetes_role, jwt=jwt, mount_point=settings.auth_mount or "kubernetes"
        )


class VaultClient:
    """One authenticated hvac client, shared by the threads of a process."""

    def __init__(self, settings: VaultSettings, factory: Callable[..., Any] = hvac.Client) -> None:
        self.settings = settings
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    def _connected(self, fresh: bool = False) -> Any:
        with self._lock:
            if self._client is None or fresh:
                s = self.settings
                verify: bool | str = str(s.ca_file) if s.ca_file else True
                client = self._factory(url=s.addr, timeout=s.timeout_s, verify=verify, namespace=s.namespace)
                login(client, s)
                self._client = client
            return self._client

    def call(self, fn: Callable[[Any], T]) -> T:
        """``fn(client)``, logging in again once if the token was refused; errors typed."""
        try:
            try:
                return fn(self._connected())
            except (vault_errors.Forbidden, vault_errors.Unauthorized):
                if self.settings.auth == "token":
                    raise
                return fn(self._connected(fresh=True))
        except _DOWN as error:
            raise VaultUnavailable(
                f"Vault at {self.settings.addr} unavailable: {type(error).__name__}"
            ) from None
        except vault_errors.VaultError as error:
            raise VaultRefused(f"Vault refused: {type(error).__name__}: {error}") from None

    def read_kv(self, ref: KvRef) -> SecretStr:
        """The field of a KV v2 secret."""
        response = self.call(
            lambda c: c.secrets.kv.v2.read_secret_version(
                path=ref.path, mount_point=ref.mount, raise_on_deleted_version=True
            )
        )
        data = response["data"]["data"]
        if ref.key not in data:
            raise VaultRefused(f"{ref}: the secret has no field {ref.key!r}")
        return SecretStr(str(data[ref.key]))

    def database_credentials(self, role: str) -> tuple[str, SecretStr, dict[str, Any]]:
        """New dynamic credentials of ``role``: user, password, and the lease (``lease_id``,
        ``lease_duration``, ``renewable``)."""
        mount = self.settings.database_mount
        response = self.call(lambda c: c.secrets.database.generate_credentials(name=role, mount_point=mount))
        data = response["data"]
        return data["username"], SecretStr(data["password"]), response

    def renew(self, lease_id: str, increment_s: float) -> float:
        """Renew a lease; the seconds granted."""
        response = self.call(lambda c: c.sys.renew_lease(lease_id=lease_id, increment=int(increment_s)))
        return float(response["lease_duration"])

    def lookup_self(self) -> None:
        """Ask Vault about our own token (does it answer, is the token valid?)."""
        self.call(lambda c: c.auth.token.lookup_self())

    def revoke(self, lease_id: str) -> None:
        self.call(lambda c: c.sys.revoke_lease(lease_id=lease_id))

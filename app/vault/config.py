"""Settings of the Vault connection (a part of :class:`app.settings.Settings`, ``vault.*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator


class VaultSettings(BaseModel):
    """Where secrets referenced as ``vault:...``/``vault-db:...`` come from (README, Security)."""

    addr: str | None = None
    """Vault (or OpenBao) URL, e.g. ``https://vault.example:8200``; None: no references allowed."""
    auth: Literal["token", "approle", "kubernetes"] = "token"
    auth_mount: str | None = None
    """Mount path of the auth method (default: its name, ``approle`` or ``kubernetes``)."""
    token: SecretStr | None = None
    """``auth = "token"``: the token (else env ``VAULT_TOKEN``)."""
    role_id: str | None = None
    secret_id: SecretStr | None = None
    """``auth = "approle"``: the AppRole's role id and secret id."""
    kubernetes_role: str | None = None
    kubernetes_jwt_file: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    """``auth = "kubernetes"``: the Vault role and the service account token (the pod's projected token)."""
    namespace: str | None = None
    ca_file: Path | None = None
    """CA bundle to verify Vault's certificate (default: the system's)."""
    database_mount: str = "database"
    """Mount of the database secrets engine (``vault-db:`` references)."""
    timeout_s: float = Field(default=5.0, gt=0)
    grace_s: float = Field(default=300.0, ge=0)
    """While Vault cannot be reached, leased credentials are used this long (if their lease has not
    expired); then the worker pauses (shown on ``/health``) until Vault answers again."""
    startup_timeout_s: float = Field(default=60.0, ge=0)
    """How long start-up retries reading the referenced secrets before it fails."""

    @model_validator(mode="after")
    def _auth_is_complete(self) -> VaultSettings:
        needed = {"approle": ("role_id", "secret_id"), "kubernetes": ("kubernetes_role",)}.get(self.auth, ())
        missing = [name for name in needed if getattr(self, name) is None]
        if self.addr and missing:
            raise ValueError(f"vault.{missing[0]}: needed by vault.auth = {self.auth!r}")
        return self

"""TLS client contexts for Kafka and Cassandra, from the settings (PostgreSQL's TLS is libpq's:
:mod:`app.pg_connection`).

Verification is on by default (``verify = "full"``: the chain against ``ca_file`` or the system's CAs,
and the host name); TLS 1.2 at least, 1.3 preferred (OpenSSL negotiates the highest both sides speak).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr, model_validator

TlsVersion = Literal["TLSv1.2", "TLSv1.3"]


class TlsSettings(BaseModel):
    enabled: bool = False
    ca_file: Path | None = None
    """CA bundle (PEM) to verify the servers; default: the system's."""
    cert_file: Path | None = None
    key_file: Path | None = None
    """Client certificate and key (PEM), for servers that require one (mutual TLS)."""
    key_password: SecretStr | None = None
    verify: Literal["full", "ca", "none"] = "full"
    """``full``: chain and host name; ``ca``: chain only; ``none``: no verification (testing only)."""
    min_version: TlsVersion = "TLSv1.2"

    @model_validator(mode="after")
    def _key_with_cert(self) -> TlsSettings:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("tls.key_file needs tls.cert_file")
        return self


def context(tls: TlsSettings) -> ssl.SSLContext:
    """A client context for ``tls`` (reads the files: call at connect time, not at import)."""
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file) if tls.ca_file else None
    )
    ctx.minimum_version = ssl.TLSVersion[tls.min_version.replace("TLSv1.", "TLSv1_")]
    if tls.verify != "full":
        ctx.check_hostname = False
    if tls.verify == "none":
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None:
        password = tls.key_password.get_secret_value() if tls.key_password else None
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None, password)
    return ctx

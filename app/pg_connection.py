"""How every PostgreSQL connection of the process is made, from the settings.

The DSN, then ``postgres.user``/``password`` (a ``vault-db:`` password: the current dynamic credentials of
:mod:`app.vault.database`, one lease per process), ``postgres.role`` (switched to at connect) and the TLS
options. Callers pass their own options (``statement_timeout``) through :func:`connect_kwargs`.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from app.settings import Settings
from app.vault.client import VaultClient
from app.vault.database import DatabaseCredentials
from app.vault.refs import DbRef, parse_reference

_providers: dict[tuple[str | None, str], DatabaseCredentials] = {}
_providers_lock = threading.Lock()


def dynamic_credentials(settings: Settings) -> DatabaseCredentials | None:
    """The process's lease of ``postgres.password = "vault-db:ROLE"`` (started on first use), else None."""
    password = settings.postgres.password
    ref = parse_reference(password.get_secret_value()) if password else None
    if not isinstance(ref, DbRef):
        return None
    key = (settings.vault.addr, ref.role)
    with _providers_lock:
        provider = _providers.get(key)
        if provider is None:
            provider = DatabaseCredentials(VaultClient(settings.vault), ref.role, settings.vault.grace_s)
            provider.sessions_of = lambda user: sessions_of(settings, user)
            provider.start()
            if not _providers:
                atexit.register(close_dynamic_credentials)  # a clean exit revokes the leases it holds
            _providers[key] = provider
    return provider


def close_dynamic_credentials() -> None:
    """Stop renewing and revoke every lease of the process (at exit; the users are dropped)."""
    with _providers_lock:
        providers = list(_providers.values())
        _providers.clear()
    for provider in providers:
        provider.close()


def _options(settings: Settings, extra: str) -> str:
    role = settings.postgres.role
    parts = [f"-c role={role.replace(' ', chr(92) + ' ')}" if role else "", extra]
    return " ".join(part for part in parts if part)


def connect_kwargs(settings: Settings, options: str = "") -> dict[str, Any]:
    """Keyword arguments of ``psycopg.connect`` beside the DSN (credentials of this moment)."""
    pg = settings.postgres
    kwargs: dict[str, Any] = {}
    if pg.user:
        kwargs["user"] = pg.user
    provider = dynamic_credentials(settings)
    if provider is not None:
        creds = provider.current()
        kwargs["user"], kwargs["password"] = creds.user, creds.password.get_secret_value()
    elif pg.password is not None:
        kwargs["password"] = pg.password.get_secret_value()
    if _options(settings, options):
        kwargs["options"] = _options(settings, options)
    if pg.sslmode:
        kwargs["sslmode"] = pg.sslmode
    for name in ("sslrootcert", "sslcert", "sslkey"):
        if getattr(pg, name) is not None:
            kwargs[name] = str(getattr(pg, name))
    if pg.sslmode or pg.sslrootcert:
        kwargs["ssl_min_protocol_version"] = pg.ssl_min_protocol_version
    return kwargs


def conninfo(settings: Settings, options: str = "") -> str:
    """The full connection string of this moment (credentials included: never log it)."""
    return make_conninfo(settings.postgres.dsn.get_secret_value(), **connect_kwargs(settings, options))


def connect(settings: Settings, **kwargs: Any) -> psycopg.Connection[Any]:
    """A new connection (``kwargs``: e.g. ``autocommit``)."""
    return psycopg.connect(conninfo(settings), **kwargs)


def sessions_of(settings: Settings, user: str) -> int:
    """Sessions of ``user`` in the server (asked with the current credentials)."""
    with connect(settings, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (user,)).fetchone()
    return int(row[0]) if row else 0

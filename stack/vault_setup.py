"""Vault (OpenBao) set-up for the worker: the database secrets engine against PostgreSQL, a least-privilege
group role for the dynamic users, an AppRole with its policy, and KV secrets.

Used by the local stack (``cdc stack up openbao``: the stack's database) and by the tests (a database of
their own). Every step is idempotent.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

POLICY = """\
path "{database_mount}/creds/{role}" {{ capabilities = ["read"] }}
path "sys/leases/renew" {{ capabilities = ["update"] }}
path "sys/leases/revoke" {{ capabilities = ["update"] }}
path "{kv_mount}/data/{kv_path}" {{ capabilities = ["read"] }}
"""
"""What the worker's Vault identity may do: lease its role's credentials, renew and revoke them, and read
its KV secret."""


def _quoted(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def writer_grants(database: str, group: str) -> list[sql.Composed]:
    """The group role every dynamic user is a member of, and all it is granted: connect, create schemas (the
    mirrors: each schema is then the group's own), and create its ``_cdc_`` tables in ``public``. Nothing
    else: no superuser, no other schema, no role or database creation."""
    role, db = sql.Identifier(group), sql.Identifier(database)
    return [
        sql.SQL(
            "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) THEN "
            "CREATE ROLE {role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT; END IF; END$$"
        ).format(name=sql.Literal(group), role=role),
        sql.SQL("GRANT CONNECT, TEMPORARY, CREATE ON DATABASE {} TO {}").format(db, role),
        sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(role),
    ]


def grant_writer(admin_dsn: str, database: str, group: str) -> None:
    """Create the group role and its grants (``admin_dsn``: a superuser's connection to ``database``)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for statement in writer_grants(database, group):
            conn.execute(statement)


def creation_statements(group: str) -> list[str]:
    """How the engine creates a dynamic user: a login role in ``group``, no expiry of its own (the lease's
    revocation drops it), inheriting nothing: the worker switches to ``group`` at connect
    (``postgres.role``), so what it creates is owned by the group, not by a user that is dropped."""
    return [
        "CREATE ROLE \"{{name}}\" LOGIN NOINHERIT PASSWORD '{{password}}' IN ROLE " + _quoted(group),
    ]


def revocation_statements(group: str) -> list[str]:
    return [
        'REASSIGN OWNED BY "{{name}}" TO ' + _quoted(group),
        'DROP OWNED BY "{{name}}"',
        'DROP ROLE IF EXISTS "{{name}}"',
    ]


def enable(client: Any, kind: str, path: str, auth: bool = False) -> None:
    """Enable a secrets engine (or an auth method) at ``path`` unless it is there."""
    if auth:
        if f"{path}/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method(kind, path=path)
    elif f"{path}/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine(kind, path=path)


def configure_database(
    client: Any,
    *,
    connection: str,
    url: str,
    username: str,
    password: str,
    group: str,
    role: str,
    ttl_s: int,
    max_ttl_s: int,
    mount: str = "database",
) -> None:
    """The engine's connection to PostgreSQL (``url`` with ``{{username}}``/``{{password}}`` placeholders,
    an admin's credentials) and the role the worker leases credentials of."""
    enable(client, "database", mount)
    client.secrets.database.configure(
        name=connection,
        plugin_name="postgresql-database-plugin",
        connection_url=url,
        username=username,
        password=password,
        allowed_roles=[role],
        verify_connection=True,
        mount_point=mount,
    )
    client.secrets.database.create_role(
        name=role,
        db_name=connection,
        creation_statements=creation_statements(group),
        revocation_statements=revocation_statements(group),
        default_ttl=f"{ttl_s}s",
        max_ttl=f"{max_ttl_s}s",
        mount_point=mount,
    )


def configure_approle(client: Any, name: str, policy: str, mount: str = "approle") -> tuple[str, str]:
    """An AppRole bound to a policy of the same name; its role id and a new secret id."""
    enable(client, "approle", mount, auth=True)
    client.sys.create_or_update_policy(name=name, policy=policy)
    client.auth.approle.create_or_update_approle(
        role_name=name,
        token_policies=[name],
        token_ttl="1h",  # noqa: S106 - a duration
        token_max_ttl="24h",  # noqa: S106 - a duration
        mount_point=mount,
    )
    role_id = client.auth.approle.read_role_id(role_name=name, mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(role_name=name, mount_point=mount)["data"]["secret_id"]
    return str(role_id), str(secret_id)


def policy(role: str, kv_path: str, database_mount: str = "database", kv_mount: str = "secret") -> str:
    return POLICY.format(database_mount=database_mount, role=role, kv_mount=kv_mount, kv_path=kv_path)

"""References to Vault secrets in settings values (pure).

- ``vault:MOUNT/PATH#KEY``: the field ``KEY`` of the KV v2 secret ``PATH`` under the mount ``MOUNT``, e.g.
  ``vault:secret/cdc#web_token``; read once at start-up.
- ``vault-db:ROLE``: dynamic credentials (user and password) of the database secrets engine's role ``ROLE``;
  leased, renewed and rotated while the process runs (only ``postgres.password``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, SecretStr

KV_PREFIX = "vault:"
DB_PREFIX = "vault-db:"


class BadReference(ValueError):
    """A value that starts like a reference but is not a valid one."""


@dataclass(frozen=True)
class KvRef:
    mount: str
    path: str
    key: str

    def __str__(self) -> str:
        return f"{KV_PREFIX}{self.mount}/{self.path}#{self.key}"


@dataclass(frozen=True)
class DbRef:
    role: str

    def __str__(self) -> str:
        return f"{DB_PREFIX}{self.role}"


def is_reference(value: str) -> bool:
    return value.startswith((KV_PREFIX, DB_PREFIX))


def parse_reference(value: str) -> KvRef | DbRef | None:
    """The reference ``value`` holds, None for a plain value; :class:`BadReference` for a malformed one."""
    if value.startswith(DB_PREFIX):
        role = value.removeprefix(DB_PREFIX)
        if not role or "/" in role or "#" in role:
            raise BadReference(f"{DB_PREFIX}ROLE expected (e.g. {DB_PREFIX}cdc-writer)")
        return DbRef(role)
    if not value.startswith(KV_PREFIX):
        return None
    location, _, key = value.removeprefix(KV_PREFIX).partition("#")
    mount, _, path = location.partition("/")
    if not (mount and path.strip("/") and key):
        raise BadReference(f"{KV_PREFIX}MOUNT/PATH#KEY expected (e.g. {KV_PREFIX}secret/cdc#web_token)")
    return KvRef(mount, path.strip("/"), key)


def references(model: BaseModel, prefix: str = "") -> dict[str, str]:
    """Every secret setting that holds a Vault reference (dotted key -> reference), checked."""
    found: dict[str, str] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            found.update(references(value, f"{key}."))
        elif isinstance(value, SecretStr) and is_reference(value.get_secret_value()):
            try:
                ref = parse_reference(value.get_secret_value())
            except BadReference as error:
                raise ValueError(f"{key}: {error}") from None
            found[key] = str(ref)
    return found

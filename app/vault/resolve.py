"""The settings with their static Vault references (``vault:MOUNT/PATH#KEY``) read, once, at start-up.

``vault-db:`` references stay as they are: :mod:`app.vault.database` leases those while the process runs.
Vault down at start-up is retried with backoff for ``vault.startup_timeout_s``.
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import BaseModel
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from app.vault.client import VaultClient, VaultUnavailable
from app.vault.config import VaultSettings
from app.vault.refs import KvRef, parse_reference, references

log = structlog.get_logger("cdc.vault")


def static_references(settings: BaseModel) -> dict[str, KvRef]:
    """Dotted key -> KV reference, for every setting that holds one."""
    found = {key: parse_reference(ref) for key, ref in references(settings).items()}
    return {key: ref for key, ref in found.items() if isinstance(ref, KvRef)}


def nested(values: dict[str, Any], into: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, merged into a copy of ``into``: keyword arguments of the
    settings (deep-merged by pydantic-settings with the other sources)."""
    tree: dict[str, Any] = _copy_tree(into or {})
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[leaf] = value
    return tree


def _copy_tree(tree: dict[str, Any]) -> dict[str, Any]:
    return {key: _copy_tree(value) if isinstance(value, dict) else value for key, value in tree.items()}


def read_references(
    settings: BaseModel, vault: VaultSettings, client: VaultClient | None = None
) -> dict[str, str]:
    """Dotted key -> secret value of every static reference in ``settings`` (empty when there are none)."""
    refs = static_references(settings)
    if not refs:
        return {}
    client = client or VaultClient(vault)
    retrying = Retrying(
        retry=retry_if_exception_type(VaultUnavailable),
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_delay(vault.startup_timeout_s),
        before_sleep=lambda state: log.warning(
            "Vault unavailable at start-up, retrying", attempt=state.attempt_number
        ),
        reraise=True,
    )
    values = {}
    for key, ref in refs.items():
        values[key] = retrying(client.read_kv, ref).get_secret_value()
    log.info("secrets read from Vault", settings=sorted(values))
    return values

"""Sealing dead letters' payloads when transforms are configured: a dead letter keeps the event as it came
(so it can be replayed), and that event holds the original values the transforms keep out of PostgreSQL.

A sealed payload is ``cdc-sealed:v1:`` + a Fernet token (AES-128-CBC + HMAC-SHA256, from ``cryptography``)
under a key derived from ``transform_hash_key`` (HKDF-SHA256, its own label, so the hash key itself never
encrypts). The record's value and its error message (a value that did not map is quoted there) are sealed;
the Kafka key is not (it carries the primary key, which is mirrored unchanged, and partitions the DLQ topic).
Replay, ``cdc dlq show`` and ``GET /dlq/{id}`` open them with the same key; the DLQ topic gets them sealed,
with a ``cdc.sealed`` header.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from app.settings import Settings

PREFIX = b"cdc-sealed:v1:"
TEXT_PREFIX = "sealed:v1:"


class SealError(ValueError):
    """A sealed payload that this key cannot open (another key, or damaged)."""


class Sealer:
    def __init__(self, secret: bytes) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"cass-cdc-pg dead letters"
        ).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, data: bytes | None) -> bytes | None:
        if data is None or data.startswith(PREFIX):
            return data
        return PREFIX + self._fernet.encrypt(data)

    def open(self, data: bytes | None) -> bytes | None:
        """The original bytes of a sealed payload; anything not sealed as it is."""
        if data is None or not data.startswith(PREFIX):
            return data
        try:
            return self._fernet.decrypt(data[len(PREFIX) :])
        except InvalidToken:
            raise SealError("a sealed dead letter this transform_hash_key cannot open") from None

    def seal_text(self, text: str) -> str:
        if text.startswith(TEXT_PREFIX):
            return text
        return TEXT_PREFIX + self._fernet.encrypt(text.encode()).decode()

    def open_text(self, text: str | None) -> str | None:
        if text is None or not text.startswith(TEXT_PREFIX):
            return text
        try:
            return self._fernet.decrypt(text[len(TEXT_PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SealError("a sealed dead letter this transform_hash_key cannot open") from None


def is_sealed(data: bytes | None) -> bool:
    return data is not None and data.startswith(PREFIX)


def sealer_for(settings: Settings) -> Sealer | None:
    """The sealer of these settings: one when transforms are configured (they require the key), else None."""
    if not settings.transforms or settings.transform_hash_key is None:
        return None
    return Sealer(settings.hash_key)


def opened(row: dict[str, Any], sealer: Sealer | None) -> dict[str, Any]:
    """A dead letter's row (``store.record``) with its sealed fields opened, for an authorised reader."""
    if sealer is None:
        return row
    out = dict(row)
    if out.get("value") is not None:
        out["value"] = sealer.open(bytes(out["value"]))
    for name in ("error_message", "last_error"):
        if isinstance(out.get(name), str):
            out[name] = sealer.open_text(out[name])
    return out

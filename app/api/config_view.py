"""``/config``: the effective settings with every secret redacted, and the hot-reloadable subset a ``PATCH``
may change, validated by the settings model itself (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from app.api.errors import ApiError
from app.logging import REDACTED, redact_text
from app.settings import Settings

HOT: dict[str, str] = {
    "log_level": "log level of the running worker",
    "sink.batch_size": "records per batch (from the next batch)",
    "sink.batch_timeout_s": "how long a batch waits to fill (from the next batch)",
    "dlq.replay_rate": "records per second of replays that name no rate (from the next replay)",
}
"""What ``PATCH /config`` may change without a restart; anything else is rejected by name."""


def effective(settings: Settings) -> dict[str, Any]:
    """Every setting as JSON; secrets as ``***`` (a DSN keeps its shape with the password hidden)."""
    return _redacted(settings)


def _redacted(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        out[name] = _value(name, getattr(model, name))
    return out


def _value(name: str, value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _redacted(value)
    if isinstance(value, SecretStr):
        return redact_text(value.get_secret_value()) if name == "dsn" else REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list | tuple):
        return [_value(name, v) for v in value]
    if isinstance(value, Mapping):
        return {k: _value(k, v) for k, v in value.items()}
    return value if value is None or isinstance(value, bool | int | float) else str(value)


def flatten(body: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"sink": {"batch_size": 5}}`` and ``{"sink.batch_size": 5}`` alike -> ``{"sink.batch_size": 5}``."""
    flat: dict[str, Any] = {}
    for key, value in body.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def validated(settings: Settings, body: Any) -> dict[str, Any]:
    """The changes ``body`` asks for, validated (dotted key -> value); raises :class:`ApiError` naming the
    first key that is not hot-reloadable or not valid."""
    if not isinstance(body, Mapping) or not body:
        raise ApiError(
            400, "bad_request", 'send a JSON object of settings, e.g. {"sink": {"batch_size": 500}}'
        )
    changes = flatten(body)
    for key in sorted(changes):
        if key not in HOT:
            raise ApiError(
                422, "not_reloadable", f"{key}: not hot-reloadable (these are: {', '.join(sorted(HOT))})"
            )
    return {key: _checked(settings, key, value) for key, value in changes.items()}


def _checked(settings: Settings, key: str, value: Any) -> Any:
    section, _, name = key.rpartition(".")
    owner: BaseModel = getattr(settings, section) if section else settings
    try:
        if section:
            return getattr(type(owner).model_validate({**owner.model_dump(), name: value}), name)
        field = type(owner).model_fields[name]
        return TypeAdapter(field.annotation or Any).validate_python(value)
    except ValidationError as error:
        message = error.errors()[0]["msg"]
        raise ApiError(422, "invalid", f"{key}: {message}") from None


def apply(settings: Settings, changes: Mapping[str, Any]) -> None:
    """Set validated changes on the live settings object (readers read them at use)."""
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        setattr(getattr(settings, section) if section else settings, name, value)

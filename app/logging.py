"""structlog set-up: small composable processors, secrets redacted before anything is rendered."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

_SECRET_KEY = re.compile(r"(password|passwd|secret|token|dsn|api_key|credential)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+):[^@\s]+@", re.IGNORECASE)
_KEY_VALUE_PASSWORD = re.compile(
    r"(?P<key>\b(?:password|passwd)\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^\s'\"&]+)", re.IGNORECASE
)
"""libpq's ``key=value`` connection strings (``host=h password=secret``, ``password='with spaces'``), as
psycopg and libpq quote them in errors, and ``?password=`` in URL queries."""
REDACTED = "***"


def redact_text(text: str) -> str:
    """Hide passwords inside ``text``: of any ``scheme://user:password@host`` URL and of libpq
    ``password=...`` settings."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:{REDACTED}@", text)
    return _KEY_VALUE_PASSWORD.sub(lambda m: f"{m.group('key')}{REDACTED}", text)


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask values of secret-looking keys and passwords embedded in text (URLs, libpq
    ``password=``), exceptions passed as values included (rendered to their redacted text)."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEY.search(key) and value is not None:
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = redact_text(value)
        elif isinstance(value, BaseException):
            event_dict[key] = redact_text(f"{type(value).__name__}: {value}")
    return event_dict


class _Level:
    """The level below which events are dropped; changed at run time by :func:`set_level`."""

    value = logging.INFO


def set_level(level: str) -> None:
    """Change the log level of a running process (``PATCH /config``)."""
    _Level.value = logging.getLevelName(level)
    logging.getLogger().setLevel(_Level.value)


def _by_level(_: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if logging.getLevelName(method.upper()) < _Level.value:
        raise structlog.DropEvent
    return event_dict


def configured_settings() -> Any:
    """The validated settings, with logging configured from them; a bad value exits 2 naming the key."""
    from app.settings import ConfigError, get_settings

    try:
        settings = get_settings()
    except ConfigError as error:
        print(f"cdc: {error}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_format)
    from app import tracing

    tracing.configure(settings.tracing)
    return settings


def add_trace_ids(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current span's ``trace_id`` and ``span_id`` (hex, as trace UIs show them);
    nothing outside a span or with tracing off."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Route structlog and the standard library (Faust, aiokafka) through one renderer."""
    set_level(level)
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        _by_level,
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        # redaction after format_exc_info: a traceback's exception messages (libpq's included) are text then
        processors=[*shared, structlog.processors.format_exc_info, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)

"""What every view shares: JSON in and out, the one error body, the bearer-token guard, the worker's pool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

import orjson
import structlog
from faust.web import View

from agents.changes import current_runtime
from app.api.auth import authorize
from app.api.errors import ApiError, bad_request, unavailable
from app.logging import redact_text
from app.settings import get_settings
from models.dlq import decoded

log = structlog.get_logger("cdc.api")

Handler = Callable[..., Awaitable[Any]]


def _default(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return decoded(bytes(value))
    raise TypeError(type(value).__name__)


def respond(view: View, body: Any, status: int = 200) -> Any:
    return view.bytes(orjson.dumps(body, default=_default), content_type="application/json", status=status)


def endpoint(*, auth: bool = False) -> Callable[[Handler], Handler]:
    """Wrap a view method: the token check (when ``auth``) and :class:`ApiError` -> its status and body."""

    def wrap(method: Handler) -> Handler:
        @wraps(method)
        async def inner(self: View, request: Any, **kwargs: Any) -> Any:
            try:
                if auth:
                    refused = authorize(request.headers.get("Authorization"), get_settings().web.token)
                    if refused is not None:
                        raise refused
                return await method(self, request, **kwargs)
            except ApiError as error:
                return respond(self, error.body(), error.status)
            except Exception as error:  # a bug or a dependency down: the same error body, logged, redacted
                log.exception("API request failed", path=str(request.path))
                failure = ApiError(500, "internal", redact_text(f"{type(error).__name__}: {error}")[:500])
                return respond(self, failure.body(), failure.status)

        return inner

    return wrap


async def body_of(request: Any) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise bad_request(f"the body is not JSON: {error}") from None


def integer(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{name}: an integer") from None


async def in_pool(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(conn, *args)`` on a connection of the worker's pool, in a thread (503 before start-up)."""
    pool = current_runtime().pool
    if pool is None:
        raise unavailable("the worker has not connected to PostgreSQL yet")

    def run() -> Any:
        with pool.connection() as conn:
            return fn(conn, *args)

    return await asyncio.to_thread(run)

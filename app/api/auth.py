"""Bearer-token check of the management API (pure; constant-time compare)."""

from __future__ import annotations

import hmac

from pydantic import SecretStr

from app.api.errors import ApiError

DISABLED = (
    "this endpoint is disabled: no management token is configured (set CDC_WEB__TOKEN, at least 16 "
    "characters, and send it as 'Authorization: Bearer <token>')"
)


def authorize(header: str | None, token: SecretStr | None) -> ApiError | None:
    """None when ``header`` carries the configured token; else the error to answer (401 without a bearer
    token, 403 with a wrong one or when no token is configured). The token is never echoed."""
    if token is None:
        return ApiError(403, "disabled", DISABLED)
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'")
    expected = token.get_secret_value().encode()
    if not hmac.compare_digest(given.strip().encode(), expected):
        return ApiError(403, "forbidden", "the token is not valid")
    return None

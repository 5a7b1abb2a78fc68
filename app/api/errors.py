"""One error body for every endpoint: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ApiError(Exception):
    status: int
    code: str
    message: str

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what}")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def unavailable(message: str) -> ApiError:
    return ApiError(503, "unavailable", message)

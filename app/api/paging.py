"""Keyset pagination of list endpoints: ``?limit=`` (1..1000, default 50) and ``?after=<id>``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.api.errors import bad_request

MAX_LIMIT = 1000


@dataclass(frozen=True)
class Page:
    limit: int = 50
    after: int = 0


def page(query: Mapping[str, str]) -> Page:
    try:
        limit = int(query.get("limit", "50"))
        after = int(query.get("after", "0"))
    except ValueError:
        raise bad_request("limit and after are integers") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit: between 1 and {MAX_LIMIT}")
    if after < 0:
        raise bad_request("after: an id, >= 0")
    return Page(limit, after)


def next_after(ids: list[int], p: Page) -> int | None:
    """The ``after`` of the next page (None on the last one)."""
    return ids[-1] if len(ids) == p.limit and ids else None

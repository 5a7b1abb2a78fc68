"""``/backfill``: start a backfill job, list jobs, read one job's progress; all need the token."""

from __future__ import annotations

from typing import Any

from faust.web import View

from agents import backfill as runner
from agents.api.base import body_of, endpoint, in_pool, integer, respond
from app.api.errors import ApiError, bad_request, not_found
from app.api.paging import next_after, page
from app.backfill import store
from app.backfill.runner import BackfillOptions, checked_tables
from app.faust_app import app
from app.settings import get_settings

_FIELDS = {"tables", "parallel", "rate", "ranges", "page_size", "batch_rows", "consistency"}
_LIMITS = {
    "parallel": (1, 64),
    "ranges": (1, 1_000_000),
    "page_size": (10, 100_000),
    "batch_rows": (1, 100_000),
}
_LEVELS = ("ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL")


def _number(body: dict[str, Any], name: str) -> int:
    value = body[name]
    low, high = _LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: an integer from {low} to {high}")
    return value


def start_options(body: Any) -> tuple[list[str], BackfillOptions]:
    """A start body -> the tables and the job's options (400 naming the field)."""
    if not isinstance(body, dict):
        raise bad_request("send a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise bad_request(f"{unknown[0]}: unknown field (known: {', '.join(sorted(_FIELDS))})")
    try:
        given = body.get("tables")
        if not isinstance(given, list) or not all(isinstance(t, str) for t in given):
            raise ValueError("tables: a list of keyspace.table names")
        tables = checked_tables(given)
        overrides: dict[str, Any] = {n: _number(body, n) for n in _LIMITS if n in body}
        if "rate" in body:
            rate = body["rate"]
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
                raise ValueError("rate: rows per second, above 0")
            overrides["rate"] = float(rate)
        if "consistency" in body:
            if body["consistency"] not in _LEVELS:
                raise ValueError(f"consistency: one of {', '.join(_LEVELS)}")
            overrides["consistency"] = body["consistency"]
    except ValueError as error:
        raise bad_request(str(error)) from None
    return tables, BackfillOptions.from_settings(get_settings(), **overrides)


@app.page("/backfill")
class Backfills(View):
    @endpoint(auth=True)
    async def post(self, request: Any) -> Any:
        tables, options = start_options(await body_of(request))
        if runner.busy():
            raise ApiError(429, "busy", "a backfill job is running on this worker; try again later")
        job_id = await runner.trigger(tables, options)
        return respond(self, {"job_id": job_id, "status": "running"}, 202)

    @endpoint(auth=True)
    async def get(self, request: Any) -> Any:
        p = page(request.query)
        filters = {n: request.query.get(n) for n in ("table", "status") if request.query.get(n)}
        rows = await in_pool(store.jobs, filters, p.limit, p.after)
        return respond(self, {"jobs": rows, "next_after": next_after([r["id"] for r in rows], p)})


@app.page("/backfill/{id}")
class Backfill(View):
    @endpoint(auth=True)
    async def get(self, request: Any, id: str) -> Any:
        found = await in_pool(store.job, integer(id, "id"))
        if found is None:
            raise not_found(f"backfill job {id}")
        return respond(self, found)

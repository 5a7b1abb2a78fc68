"""``/reconciliation``: trigger a job, list and read jobs, list mismatches and resolve one; all need the token."""

from __future__ import annotations

from typing import Any

from faust.web import View

from agents import reconciliation as runner
from agents.api.base import body_of, endpoint, in_pool, integer, respond
from app.api.errors import ApiError, bad_request, not_found
from app.api.paging import next_after, page
from app.faust_app import app
from app.reconcile import jobs, store
from app.reconcile.engine import Strategy
from app.settings import get_settings

_TRIGGER = {"tables", "strategy", "repair", "ranges", "row_threshold", "sample_size"}


def trigger_options(body: Any) -> tuple[list[str], jobs.JobOptions]:
    """A trigger body -> the tables and the job's options (400 naming the field)."""
    if not isinstance(body, dict):
        raise bad_request("send a JSON object")
    unknown = sorted(set(body) - _TRIGGER)
    if unknown:
        raise bad_request(f"{unknown[0]}: unknown field (known: {', '.join(sorted(_TRIGGER))})")
    try:
        tables = jobs.checked_tables(body.get("tables") or [])
        overrides: dict[str, Any] = {"repair": bool(body.get("repair", False))}
        if "strategy" in body:
            if body["strategy"] not in ("CHECKSUM", "ROW_COUNT", "SAMPLE"):
                raise ValueError("strategy: CHECKSUM, ROW_COUNT or SAMPLE (TIMESTAMP_RANGE: cdc reconcile)")
            overrides["strategy"] = Strategy(body["strategy"])
        for name in ("ranges", "row_threshold", "sample_size"):
            if name in body:
                value = int(body[name])
                if value < 1:
                    raise ValueError(f"{name}: at least 1")
                overrides[name] = value
    except (ValueError, TypeError) as error:
        raise bad_request(str(error)) from None
    return tables, jobs.JobOptions.from_settings(get_settings(), "manual", **overrides)


@app.page("/reconciliation/trigger")
class Trigger(View):
    @endpoint(auth=True)
    async def post(self, request: Any) -> Any:
        tables, options = trigger_options(await body_of(request))
        if runner.busy():
            limit = get_settings().reconcile.max_concurrent_jobs
            raise ApiError(429, "busy", f"{limit} reconciliation jobs are running; try again later")
        job_id = await runner.trigger(tables, options)
        return respond(self, {"job_id": job_id, "status": "running"}, 202)


def _filters(query: Any, names: tuple[str, ...]) -> dict[str, Any]:
    found = {name: query.get(name) for name in names if query.get(name)}
    if "job_id" in found:
        found["job_id"] = integer(found["job_id"], "job_id")
    return found


@app.page("/reconciliation/jobs")
class Jobs(View):
    @endpoint(auth=True)
    async def get(self, request: Any) -> Any:
        p = page(request.query)
        filters = _filters(request.query, ("table", "status", "from", "to"))
        rows = await in_pool(store.jobs, filters, p.limit, p.after)
        return respond(self, {"jobs": rows, "next_after": next_after([r["id"] for r in rows], p)})


@app.page("/reconciliation/jobs/{id}")
class Job(View):
    @endpoint(auth=True)
    async def get(self, request: Any, id: str) -> Any:
        found = await in_pool(store.job, integer(id, "id"))
        if found is None:
            raise not_found(f"reconciliation job {id}")
        return respond(self, found)


@app.page("/reconciliation/mismatches")
class Mismatches(View):
    @endpoint(auth=True)
    async def get(self, request: Any) -> Any:
        p = page(request.query)
        filters = _filters(request.query, ("job_id", "table", "type", "status"))
        rows = await in_pool(store.mismatches, filters, p.limit, p.after)
        return respond(self, {"mismatches": rows, "next_after": next_after([r["id"] for r in rows], p)})


@app.page("/reconciliation/mismatches/{id}/resolve")
class Resolve(View):
    @endpoint(auth=True)
    async def post(self, request: Any, id: str) -> Any:
        body = await body_of(request)
        status = body.get("status", "MANUAL_RESOLVED") if isinstance(body, dict) else None
        if status not in ("MANUAL_RESOLVED", "IGNORED"):
            raise bad_request("status: MANUAL_RESOLVED or IGNORED")
        found = await in_pool(store.resolve, integer(id, "id"), status, body.get("note"))
        if found is None:
            raise not_found(f"mismatch {id}")
        return respond(self, found)

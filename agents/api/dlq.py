"""``/dlq/records`` (list, one, resolve, ignore) and ``/dlq/replay`` (start, status); all need the token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faust.web import View

from agents.api.base import body_of, endpoint, in_pool, integer, respond
from app.api.errors import ApiError, bad_request, not_found
from app.api.paging import next_after, page
from app.dlq import store
from app.dlq.sealing import opened, sealer_for
from app.faust_app import app
from app.settings import get_settings
from models.dlq import DlqFilter, FilterError, Mode, ReplayRequest, parse_when


def _query_filter(query: Any) -> DlqFilter:
    try:
        return DlqFilter(
            table=query.get("table"),
            reason=query.get("reason"),
            statuses=tuple(query.getall("status", [])),
        )
    except FilterError as error:
        raise bad_request(str(error)) from None


@app.page("/dlq/records")
class Records(View):
    @endpoint(auth=True)
    async def get(self, request: Any) -> Any:
        p, f = page(request.query), _query_filter(request.query)
        prefix = get_settings().kafka.topic_prefix

        def read(conn: Any) -> dict[str, Any]:
            rows = store.records(conn, f, prefix, p.limit, p.after)
            return {
                "records": rows,
                "total": store.count(conn, f, prefix),
                "next_after": next_after([r["id"] for r in rows], p),
            }

        return respond(self, await in_pool(read))


@app.page("/dlq/records/{id}")
class Record(View):
    @endpoint(auth=True)
    async def get(self, request: Any, id: str) -> Any:
        found = await in_pool(store.record, integer(id, "id"))
        if found is None:
            raise not_found(f"dead letter {id}")
        return respond(self, opened(found, sealer_for(get_settings())))


async def _close(view: View, request: Any, id: str, status: str) -> Any:
    record_id = integer(id, "id")
    body = await body_of(request)
    note = body.get("note") if isinstance(body, dict) else None
    done = await in_pool(store.close, [record_id], status, note)
    if not done:
        exists = await in_pool(store.record, record_id)
        if exists is None:
            raise not_found(f"dead letter {id}")
        raise ApiError(409, "conflict", f"dead letter {id} is being replayed")
    return respond(view, {"id": record_id, "status": status})


@app.page("/dlq/records/{id}/resolve")
class Resolve(View):
    @endpoint(auth=True)
    async def post(self, request: Any, id: str) -> Any:
        return await _close(self, request, id, "resolved")


@app.page("/dlq/records/{id}/ignore")
class Ignore(View):
    @endpoint(auth=True)
    async def post(self, request: Any, id: str) -> Any:
        return await _close(self, request, id, "ignored")


def replay_request(body: Any) -> ReplayRequest:
    """A replay request body -> a validated request (400 naming the field)."""
    if not isinstance(body, dict):
        raise bad_request("send a JSON object")
    unknown = sorted(set(body) - {"mode", "rate", "at", "filter"})
    if unknown:
        raise bad_request(f"{unknown[0]}: unknown field (known: at, filter, mode, rate)")
    try:
        f = DlqFilter.from_dict(body.get("filter") or {})
        at = body.get("at")
        rate = body.get("rate", get_settings().dlq.replay_rate)
        when = parse_when(str(at), datetime.now(UTC)) if at is not None else None
        return ReplayRequest(
            f, Mode(body.get("mode", "immediate")), float(rate) if rate is not None else None, when
        )
    except (FilterError, ValueError, TypeError) as error:
        raise bad_request(str(error)) from None


@app.page("/dlq/replay")
class Replays(View):
    @endpoint(auth=True)
    async def post(self, request: Any) -> Any:
        """Record the job; a worker's timer starts it (within a second, or at its time)."""
        request_ = replay_request(await body_of(request))
        job = await in_pool(store.create_job, request_, "api")
        return respond(self, {"replay_id": job["id"], "status": job["status"]}, 202)


@app.page("/dlq/replay/{id}")
class Replay(View):
    @endpoint(auth=True)
    async def get(self, request: Any, id: str) -> Any:
        found = await in_pool(store.job, integer(id, "id"))
        if found is None:
            raise not_found(f"replay {id}")
        return respond(self, found)

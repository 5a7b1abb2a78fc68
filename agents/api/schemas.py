"""``/schemas/{keyspace.table}``: every recorded schema version of a table (read-only metadata)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.web import View

from agents.api.base import endpoint, respond
from agents.changes import current_runtime
from app.api.errors import bad_request, not_found, unavailable
from app.faust_app import app


@app.page("/schemas/{name}")
class Schemas(View):
    @endpoint()
    async def get(self, request: Any, name: str) -> Any:
        keyspace, _, table = name.partition(".")
        if not table:
            raise bad_request("use /schemas/<keyspace>.<table>")
        runtime = current_runtime()
        if runtime.pool is None:
            raise unavailable("the worker has not started")
        versions = await asyncio.to_thread(runtime.schema_versions, keyspace, table)
        if not versions:
            raise not_found(f"schema recorded for {name}")
        return respond(self, {"table": name, "versions": versions})

"""``/progress``: the RocksDB ``progress`` (per partition) and ``table-counters`` (per table) tables."""

from __future__ import annotations

from typing import Any

from faust.web import View

from agents.api.base import endpoint, respond
from app.faust_app import app
from tables import progress as tables


@app.page("/progress")
class Progress(View):
    @endpoint()
    async def get(self, request: Any) -> Any:
        """What this worker's committed batches did (a fast local view; PostgreSQL holds the truth)."""
        return respond(
            self,
            {
                "partitions": {k: dict(v) for k, v in tables.progress.items()},
                "tables": {k: dict(v) for k, v in tables.table_counters.items()},
                "reconciliation": {k: dict(v) for k, v in tables.reconciliation_counters.items()},
            },
        )

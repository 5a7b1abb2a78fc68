"""Web views of the worker: ``/health`` (per dependency; 503 while one is down) and ``/metrics``."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.sensors.prometheus import setup_prometheus_sensors

from app.faust_app import app
from app.health import health
from app.settings import get_settings

setup_prometheus_sensors(app)


@app.page("/health")
async def health_view(web: Any, request: Any) -> Any:
    body = health.as_dict()
    return web.json(body, status=200 if health.healthy() else 503)


@app.page("/schemas/{name}")
async def schema_versions_view(web: Any, request: Any, name: str) -> Any:
    """Every recorded schema version of ``keyspace.table`` (read-only)."""
    from agents.changes import current_runtime

    keyspace, _, table = name.partition(".")
    if not table:
        return web.json({"error": "use /schemas/<keyspace>.<table>"}, status=400)
    runtime = current_runtime()
    if runtime.pool is None:
        return web.json({"error": "the worker has not started"}, status=503)
    versions = await asyncio.to_thread(runtime.schema_versions, keyspace, table)
    if not versions:
        return web.json({"error": f"no schema recorded for {name}"}, status=404)
    return web.json({"table": name, "versions": versions})


@app.task
async def kafka_connected() -> None:
    """Runs once the worker's producer and consumer have started, i.e. Kafka answered."""
    health.mark("kafka", "up", get_settings().kafka.bootstrap_servers)

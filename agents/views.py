"""Web views of the worker: ``/health`` (per dependency; 503 while one is down) and ``/metrics``."""

from __future__ import annotations

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


@app.task
async def kafka_connected() -> None:
    """Runs once the worker's producer and consumer have started, i.e. Kafka answered."""
    health.mark("kafka", "up", get_settings().kafka.bootstrap_servers)

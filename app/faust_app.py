"""The one Faust application. Agents, tables and web views register on :data:`app` when imported."""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors

from app.health import health
from app.settings import Settings, get_settings


def faust_options(settings: Settings) -> dict[str, Any]:
    """Map our settings onto Faust's (pure, so the safety defaults are unit-tested)."""
    return {
        "id": settings.app_id,
        "broker": f"kafka://{settings.kafka.bootstrap_servers}",
        "store": "rocksdb://",
        "datadir": str(settings.data_dir),
        "web_bind": settings.web.host,
        "web_host": settings.web.host,
        "web_port": settings.web.port,
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "topic_replication_factor": 1,
        "topic_allow_declare": True,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_every": 10_000,
        "producer_acks": -1,
        "autodiscover": False,
        "topic_partitions": 1,
        "consumer_metadata_max_age_ms": 5_000,
        "stream_wait_empty": True,
        # Keep fetching while a batch is applied: the buffer holds several batches (Faust's default, 4096,
        # is about two, so the consumer stalls between them).
        "stream_buffer_maxsize": max(16_384, 4 * settings.sink.batch_size),
        # Fetch up to 16 MiB per partition per request (Faust's default, 1 MiB, is ~1,000 change events).
        "consumer_max_fetch_size": 16 * 1024 * 1024,
    }


def create_app(settings: Settings) -> faust.App:
    faust_app = faust.App(**faust_options(settings))
    setup_prometheus_sensors(faust_app)

    @faust_app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        body = health.as_dict()
        return web.json(body, status=200 if health.healthy() else 503)

    @faust_app.task
    async def _connected() -> None:
        # Runs once the worker's producer and consumer have started, i.e. Kafka answered.
        health.mark("kafka", "up", settings.kafka.bootstrap_servers)

    return faust_app


app = create_app(get_settings())

"""``/health`` (liveness, per dependency), ``/ready`` (readiness) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import View

from agents.api.base import endpoint, respond
from agents.changes import current_runtime, wiring
from app.faust_app import app
from app.health import health
from app.settings import get_settings

setup_prometheus_sensors(app)


@app.page("/health")
class Health(View):
    @endpoint()
    async def get(self, request: Any) -> Any:
        return respond(self, health.as_dict(), 200 if health.healthy() else 503)


@app.page("/ready")
class Ready(View):
    @endpoint()
    async def get(self, request: Any) -> Any:
        """Ready to work: the runtime started, PostgreSQL, Kafka and Cassandra up, partitions assigned (the
        group's last rebalance finished; a worker may be assigned none)."""
        components = health.components
        checks = {
            name: name in components and components[name].status == "up"
            for name in ("postgres", "kafka", "cassandra")
        }
        checks["started"] = current_runtime().applier is not None
        checks["partitions_assigned"] = wiring.assigned and not app.rebalancing
        ready = all(checks.values())
        return respond(self, {"ready": ready, "checks": checks}, 200 if ready else 503)


@app.task
async def kafka_connected() -> None:
    """Runs once the worker's producer and consumer have started, i.e. Kafka answered."""
    health.mark("kafka", "up", get_settings().kafka.bootstrap_servers)

"""The registry of local services, in start order."""

from __future__ import annotations

from stack.services.apicurio import Apicurio
from stack.services.base import Service
from stack.services.cassandra import Cassandra
from stack.services.debezium import Debezium
from stack.services.kafka import Kafka
from stack.services.openbao import OpenBao
from stack.services.postgres import Postgres
from stack.services.prometheus import Prometheus

SERVICES: dict[str, Service] = {
    svc.name: svc
    for svc in (Postgres(), Kafka(), Cassandra(), Apicurio(), Debezium(), OpenBao(), Prometheus())
}
DEFAULT_UP: tuple[str, ...] = ("postgres", "kafka", "cassandra", "debezium")

__all__ = ["DEFAULT_UP", "SERVICES", "Service"]

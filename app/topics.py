"""Finding Debezium change topics: Faust's pattern subscriptions do not work (faust aiokafka driver: "pattern
does not work"), so the worker lists topics itself and extends its subscription when new tables appear."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient


def topic_pattern(prefix: str) -> re.Pattern[str]:
    """Debezium change topics: ``<prefix>.<keyspace>.<table>``, nothing else."""
    return re.compile(rf"^{re.escape(prefix)}\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")


def keyspace_selected(topic: str, pattern: re.Pattern[str], keyspaces: Iterable[str]) -> bool:
    """Does ``topic`` match and belong to one of ``keyspaces`` (an empty selection means all)?"""
    if not pattern.match(topic):
        return False
    selected = set(keyspaces)
    return not selected or topic.split(".")[-2] in selected


def placeholder_topic(prefix: str) -> str:
    """Subscribed while no change topic exists yet (Faust needs at least one name); never matches the pattern."""
    return f"{prefix}.__cdc_discovery__"


def matching(names: Iterable[str], pattern: re.Pattern[str]) -> list[str]:
    return sorted(n for n in names if pattern.match(n))


async def list_topics(bootstrap: str, timeout_s: float = 5.0) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        return list(await asyncio.wait_for(admin.list_topics(), timeout_s))
    finally:
        await admin.close()


def discover_now(bootstrap: str, pattern: re.Pattern[str]) -> list[str]:
    """Best-effort synchronous discovery before the event loop runs (empty when Kafka is unreachable)."""
    try:
        return matching(asyncio.run(list_topics(bootstrap)), pattern)
    except (OSError, TimeoutError, Exception):
        return []

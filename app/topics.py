"""Finding Debezium change topics: Faust's pattern subscriptions do not work (faust aiokafka driver: "pattern
does not work"), so the worker lists topics itself and extends its subscription when new tables appear."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

UNREACHABLE = (OSError, TimeoutError, KafkaError)
"""What listing topics raises while Kafka cannot answer."""


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


async def list_topics(
    bootstrap: str, timeout_s: float = 5.0, auth: Mapping[str, Any] | None = None
) -> list[str]:
    """``auth``: security arguments (:func:`app.kafka_auth.client_kwargs`)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000), **(auth or {})
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        return list(await asyncio.wait_for(admin.list_topics(), timeout_s))
    finally:
        await admin.close()


def wait_for_kafka(bootstrap: str, auth: Mapping[str, Any] | None = None) -> None:
    """Block until Kafka answers, retrying with exponential backoff (up to 30 s apart) and logging each
    failure: a worker started before its broker waits for it instead of exiting."""
    import structlog
    from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

    log = structlog.get_logger("cdc.startup")

    def report(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "kafka unreachable, retrying", bootstrap=bootstrap, error=str(error), attempt=state.attempt_number
        )

    retrying = Retrying(
        wait=wait_exponential(multiplier=0.5, max=30),
        retry=retry_if_exception_type(UNREACHABLE),
        before_sleep=report,
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            asyncio.run(list_topics(bootstrap, auth=auth))

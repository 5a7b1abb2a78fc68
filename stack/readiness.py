"""Real readiness probes (a query, a produce, an HTTP 200) and the polling loop around them."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stack.errors import StackError

READY_TOPIC = "__stack_ready"


def wait_until(
    probe: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    on_fail: Callable[[], list[str]] | None = None,
    interval: float = 0.5,
) -> float:
    """Poll ``probe`` until it is true; returns the seconds waited.

    Raises StackError when ``timeout`` passes or ``alive`` says the process has exited, with
    ``on_fail()`` (typically the log tail) as detail.
    """
    start = time.monotonic()
    while True:
        if safe(probe):
            return time.monotonic() - start
        if alive is not None and not alive():
            raise StackError(f"{what} exited during startup", on_fail() if on_fail else None)
        if time.monotonic() - start > timeout:
            raise StackError(f"{what} not ready after {timeout:.0f}s", on_fail() if on_fail else None)
        time.sleep(interval)


def safe(probe: Callable[[], bool]) -> bool:
    try:
        return bool(probe())
    except Exception:  # any failure of a probe means "not ready yet"
        return False


def postgres(dsn: str, timeout: float = 2.0) -> bool:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=max(1, int(timeout))) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def cassandra(host: str, port: int, timeout: float = 3.0, **tls: Any) -> bool:
    """``SELECT release_version FROM system.local`` over CQL (``tls``: the TLS mode's ``ssl_context`` and
    ``auth_provider``)."""
    return cassandra_version(host, port, timeout, **tls) is not None


def cassandra_version(host: str, port: int, timeout: float = 3.0, **tls: Any) -> str | None:
    from cassandra.cluster import Cluster

    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = Cluster(
            [host], port=port, connect_timeout=timeout, control_connection_timeout=timeout, **tls
        )
    try:
        row = cluster.connect().execute("SELECT release_version FROM system.local", timeout=timeout).one()
        return row.release_version if row else None
    finally:
        cluster.shutdown()


def kafka(bootstrap: str, timeout: float = 5.0, auth: dict[str, Any] | None = None) -> bool:
    """Produce one record (acks=all) to ``__stack_ready``: proves metadata, leadership and appends
    (``auth``: security arguments of the TLS mode)."""
    return asyncio.run(asyncio.wait_for(_kafka_produce(bootstrap, timeout, auth or {}), timeout + 1))


async def _kafka_produce(bootstrap: str, timeout: float, auth: dict[str, Any]) -> bool:
    from aiokafka import AIOKafkaProducer

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    ms = int(timeout * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=ms, **auth)
    try:
        await producer.start()
        meta = await producer.send_and_wait(READY_TOPIC, b"ready")
        return bool(meta.offset >= 0)
    finally:
        await producer.stop()


def http_ok(url: str, timeout: float = 2.0, cafile: Path | None = None) -> bool:
    """GET ``url`` answers 200 (an https URL verified against ``cafile``, default the system's CAs)."""
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:  # noqa: S310 - local URL
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False

"""The one Faust application object, at the leaf of our import graph (it imports only :mod:`app.settings`,
:mod:`app.kafka_auth` and its consumer class, :mod:`app.batching_consumer`).

Nothing happens when this module is imported: Faust reads its configuration lazily, on first use of
``app.conf``, from :func:`faust_options` of the validated settings. Agents, tables and web views live in
:mod:`agents` and :mod:`tables` and register themselves on :data:`app`; Faust imports them by name
(``autodiscover``) when the ``cdc`` command runs ``app.main()``, so no module of ours imports upwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import cached_property
from typing import Any

import faust
from faust.types import TransportT

from app.batching_consumer import BatchingConsumer, BatchingTransport
from app.kafka_auth import faust_credentials
from app.settings import Settings, get_settings

DISCOVERED = ("agents", "tables")
"""Packages whose modules register agents, timers, tables and web views on :data:`app`."""


def faust_options(settings: Settings) -> dict[str, Any]:
    """Map our settings onto Faust's (pure but for reading TLS files, so the safety defaults are unit-tested)."""
    return {
        "broker": f"kafka://{settings.kafka.bootstrap_servers}",
        "broker_credentials": faust_credentials(settings.kafka),
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
        "autodiscover": list(DISCOVERED),
        # Without an explicit origin Faust's CLI guesses one from argv[0] ("cdc", "app") and scans it too.
        "origin": __name__,
        "topic_partitions": 1,
        "consumer_metadata_max_age_ms": 5_000,
        "broker_session_timeout": settings.kafka.session_timeout_s,
        "stream_wait_empty": True,
        # Fetch up to 16 MiB per partition per request (Faust's default, 1 MiB, is ~1,000 change events).
        "consumer_max_fetch_size": 16 * 1024 * 1024,
    }


class LazyOptions(Mapping[str, Any]):
    """Faust's ``config_source``: the options of :func:`get_settings`, computed when Faust first asks."""

    @cached_property
    def _options(self) -> dict[str, Any]:
        return faust_options(get_settings())

    def __getitem__(self, key: str) -> Any:
        return self._options[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)


StartHook = Callable[[], Awaitable[None]]


class CdcApp(faust.App):
    """Faust's App plus start-up hooks that run in ``on_start``, before the consumer subscribes, and stop
    hooks that run first in ``on_stop``.

    Faust's ``@app.task`` runs only after table recovery, too late to choose what the worker subscribes to,
    and a later change of subscription costs a 45 s resubscribe pause in Faust's conductor. Its
    ``on_before_shutdown`` comes only after the consumer and the tables have stopped, too late to let the
    batch in flight finish with them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_hooks: list[StartHook] = []
        self.stop_hooks: list[StartHook] = []

    def on_stopping(self, hook: StartHook) -> StartHook:
        """Decorator: await ``hook()`` when the app stops (SIGTERM), before Faust stops its consumer."""
        self.stop_hooks.append(hook)
        return hook

    async def on_stop(self) -> None:
        for hook in self.stop_hooks:
            await hook()
        await super().on_stop()

    def on_startup(self, hook: StartHook) -> StartHook:
        """Decorator: await ``hook()`` every time the app starts, before the consumer subscribes."""
        self.start_hooks.append(hook)
        return hook

    async def on_start(self) -> None:
        await super().on_start()
        for hook in self.start_hooks:
            await hook()

    def _new_transport(self) -> TransportT:
        # Faust's aiokafka transport with a consumer that hands change-topic records over in whole fetches
        # (app/batching_consumer.py); Faust's per-message path stays for its own topics.
        return BatchingTransport(self.conf.broker_consumer, self)

    @property
    def batching_consumer(self) -> BatchingConsumer:
        """The consumer, as the change agent uses it (:attr:`BatchingConsumer.buffer`, offsets)."""
        consumer = self.consumer
        assert isinstance(consumer, BatchingConsumer), type(consumer)
        return consumer


def create_app() -> CdcApp:
    """A Faust app configured from the settings on first use (its id, the Kafka group, is ``app_id``)."""
    faust_app = CdcApp("cass-cdc-pg", config_source=LazyOptions())

    @faust_app.on_configured.connect  # type: ignore[arg-type]
    def _set_id(sender: Any, conf: Any, *, signal: Any, **_: Any) -> None:
        # Faust takes the id as an argument, not an option: set it from the settings with the rest.
        conf.id = get_settings().app_id

    return faust_app


app = create_app()

"""Shared fixtures. Stack fixtures (``pg_dsn``, ``kafka_bootstrap``, ``cassandra_contact``, ``topic_prefix``,
``stack_status``) and the ``services`` marker handling live in tests/stack_fixtures.py; the real-stack tests'
``cql``, ``keyspace`` and ``start_worker`` in tests/integration/conftest.py. Helpers (event builders, topic
helpers, the worker process) are imported from :mod:`app.testing`, never copied into a test module."""

from __future__ import annotations

pytest_plugins = ("tests.stack_fixtures",)

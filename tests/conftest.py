"""Shared fixtures. Stack fixtures (``pg_dsn``, ``kafka_bootstrap``, ``cassandra_contact``, ``topic_prefix``,
``stack_status``) and the ``services`` marker handling live in tests/stack_fixtures.py."""

from __future__ import annotations

pytest_plugins = ("tests.stack_fixtures",)

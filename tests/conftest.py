"""Shared fixtures. Stack fixtures live in tests/stack_fixtures.py."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    return os.environ.get("CDC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:55432/cdc")

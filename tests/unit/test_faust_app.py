"""app.faust_app: the safety defaults Faust gets from our settings, and lazy configuration."""

from __future__ import annotations

import pytest

from app.faust_app import DISCOVERED, create_app, faust_options
from app.settings import get_settings, load_settings


def test_safety_defaults() -> None:
    options = faust_options(load_settings())
    assert options["web_bind"] == "127.0.0.1"  # nothing beyond loopback unless configured
    assert options["web_tables_enabled"] is False
    assert options["web_router_enabled"] is False
    assert options["producer_acks"] == -1
    assert options["consumer_auto_offset_reset"] == "earliest"
    assert options["autodiscover"] == list(DISCOVERED)
    assert options["broker_session_timeout"] == 60.0  # Faust's default unless CDC_KAFKA__SESSION_TIMEOUT_S


def test_configured_host_and_port_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_WEB__HOST", "0.0.0.0")
    monkeypatch.setenv("CDC_WEB__PORT", "7100")
    options = faust_options(load_settings())
    assert (options["web_bind"], options["web_port"]) == ("0.0.0.0", 7100)


def test_the_app_reads_its_settings_only_when_first_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("CDC_APP_ID", "lazy-id")
    try:
        app = create_app()
        assert not app.configured
        assert app.conf.id == "lazy-id"
        assert app.conf.broker[0].host == "127.0.0.1"
    finally:
        get_settings.cache_clear()

"""app.settings: one typed settings object, validated once, failing fast naming the key."""

from __future__ import annotations

import pytest

from app.settings import ConfigError, load_settings


def test_settings_fail_fast_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_SINK__BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match=r"sink\.batch_size \(env CDC_SINK__BATCH_SIZE\)"):
        load_settings()
    monkeypatch.delenv("CDC_SINK__BATCH_SIZE")
    monkeypatch.setenv("CDC_CONFIG_FILE", "/nonexistent.toml")
    with pytest.raises(ConfigError, match="CDC_CONFIG_FILE"):
        load_settings()


def test_settings_from_toml_file(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "cdc.toml"
    path.write_text('[kafka]\ntopic_prefix = "prod"\n[web]\nport = 7000\n')
    monkeypatch.setenv("CDC_CONFIG_FILE", str(path))
    monkeypatch.setenv("CDC_WEB__PORT", "7001")
    settings = load_settings()
    assert settings.kafka.topic_prefix == "prod"
    assert settings.web.port == 7001  # env beats the file
    assert settings.web.host == "127.0.0.1"


def test_reconciliation_tables_are_qualified_names() -> None:
    from app.settings import ConfigError, load_settings

    assert load_settings(reconcile={"auto_repair": ["ks.t", "*"]}).reconcile.auto_repair == ["ks.t", "*"]
    with pytest.raises(ConfigError, match=r"reconcile\.tables"):
        load_settings(reconcile={"tables": ["nodot"]})
